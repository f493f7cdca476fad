"""ONNX Runtime session creation: explicit providers, tuned options, optimised graph cached on disk.

The first load optimises the graph (onnxruntime's transformer fusions when the ``onnx`` package is
installed, then ORT's own ``ORT_ENABLE_ALL`` pass) and saves the result next to the model, or under
the cache directory when the model directory is read-only. Later loads read the saved graph with
optimisation switched off, so they start fast.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bridge.errors import ModelError
from bridge.models.local import OPTIMIZED_INFIX, is_derived_onnx

logger = logging.getLogger(__name__)

_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}

_QUANTIZED_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeMatMul",
        "QAttention",
    }
)

# Bump when the optimisation recipe changes so stale cached graphs are not reused.
_RECIPE = "v3"

# Saved optimised graphs kept per source graph beside a model, and in all in the cache's
# "optimized" folder (read-only model folders): each new ORT version, recipe, provider set or
# changed source file saves another, so the oldest beyond these are deleted when one is saved.
KEEP_BESIDE_MODEL = 4
KEEP_IN_CACHE = 32

# Fusions left out on CPU because their fused kernel is slower than the ops it replaces.
# SkipLayerNormalization (onnxruntime 1.32) takes 5-6x the time of Add + LayerNormalization on
# the same tensors (0.42 vs 0.09 ms for [3, 170, 128]); leaving it unfused made the nano int8 model
# 18 % faster per batch and the fp32 MiniLM-L6 5 % (benchmarks/README.md).
SLOW_CPU_FUSIONS = ("SkipLayerNormFusion",)


def default_threads() -> int:
    """Cores this process may run on (physical cores on the usual one-thread-per-core servers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_providers(providers: Sequence[str] | None) -> list[str]:
    """Map short names ("cpu", "cuda") to ORT provider names and check they are available.

    CPU is always appended as the fallback ORT needs for unsupported nodes.
    """
    available = ort.get_available_providers()
    wanted = [_PROVIDER_ALIASES.get(p.lower(), p) for p in (providers or ["cpu"])]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ModelError(
            f"execution provider(s) {missing} not available in this onnxruntime build "
            f"(available: {available}); install onnxruntime-gpu for CUDA or use providers=['cpu']"
        )
    if "CPUExecutionProvider" not in wanted:
        wanted.append("CPUExecutionProvider")
    return wanted


def session_options(
    threads: int | None, *, optimize: bool, spin: bool = False
) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    # Spinning workers only pay off on an idle machine; under load they steal the cores the
    # other worker needs (measured: benchmarks/README.md), so they are off unless asked for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def optimized_graph_path(
    onnx_path: Path, providers: Sequence[str], cache_dir: Path | None, *, tag: str = ""
) -> Path:
    """Where the optimised graph of ``onnx_path`` lives: beside it if writable, else in the cache.

    The name hashes the source file's identity, the ORT version, the providers and the recipe, so
    a changed model or runtime never picks up a stale graph.
    """
    info = onnx_path.stat()
    parts = [str(onnx_path.resolve()), str(info.st_size), str(info.st_mtime_ns), ort.__version__]
    key = "|".join([*parts, *providers, _RECIPE, tag])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = f"{onnx_path.stem}{OPTIMIZED_INFIX}{digest}.onnx"
    if _writable(onnx_path.parent):
        return onnx_path.parent / name
    if cache_dir is None:
        from bridge.models.cache_dir import default_cache_dir

        cache_dir = default_cache_dir()
    return cache_dir / "optimized" / name


def _writable(directory: Path) -> bool:
    # os.access alone says yes to root even for a directory marked read-only (a shared model
    # folder); the mode bits say what the owner meant.
    mode = directory.stat().st_mode
    return os.access(directory, os.W_OK) and bool(
        mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    )


def create_session(
    onnx_path: Path,
    *,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    cache_dir: Path | None = None,
    model_config: Mapping[str, Any] | None = None,
    reuse_optimized: bool = True,
    spin: bool = False,
) -> ort.InferenceSession:
    """Open ``onnx_path`` with explicit providers; optimise once and reuse the saved graph.

    An optimised graph this module saved (``*.optimized-*.onnx``) is opened as it is: it is
    never the source of another optimised graph."""
    resolved = resolve_providers(providers)
    if not onnx_path.is_file():
        raise ModelError(f"ONNX file not found: {onnx_path}")
    config = model_config or {}
    no_optimising = session_options(threads, optimize=False, spin=spin)
    try:
        if is_derived_onnx(onnx_path):
            logger.debug("%s is an optimised graph: opened as it is", onnx_path)
            return ort.InferenceSession(str(onnx_path), no_optimising, providers=resolved)
        tag = f"{config.get('num_attention_heads')}x{config.get('hidden_size')}"
        target = optimized_graph_path(onnx_path, resolved, cache_dir, tag=tag)
        if reuse_optimized and target.is_file():
            logger.debug("loading optimised graph %s", target)
            try:
                return ort.InferenceSession(str(target), no_optimising, providers=resolved)
            except Exception:
                if target.is_file():
                    raise
                # another process pruned it between the check and the open: optimise again
        session = _optimise_and_open(onnx_path, target, resolved, threads, config, spin)
        if target.is_file():
            beside = target.parent == onnx_path.parent
            keep = KEEP_BESIDE_MODEL if beside else KEEP_IN_CACHE
            prune_optimized(target, keep=keep, same_source=beside)
        return session
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime raises bare RuntimeError/Fail subclasses
        raise ModelError(f"could not load ONNX model {onnx_path}: {exc}") from exc


def prune_optimized(target: Path, *, keep: int, same_source: bool) -> list[Path]:
    """Delete saved optimised graphs beyond the newest ``keep`` beside ``target`` (those of the
    same source stem when ``same_source``, else every one in the folder) and every optimised
    graph of an optimised graph; ``target`` itself always stays. Returns what was deleted."""
    folder = target.parent
    source_stem = target.name.split(OPTIMIZED_INFIX, 1)[0]
    pattern = f"{glob.escape(source_stem) if same_source else '*'}{OPTIMIZED_INFIX}*.onnx"
    aged: list[tuple[int, Path]] = []
    doomed: list[Path] = []
    for path in folder.glob(pattern):
        if path == target:
            continue
        if path.name.count(OPTIMIZED_INFIX) > 1:  # made from an optimised graph: never useful
            doomed.append(path)
            continue
        with contextlib.suppress(FileNotFoundError):
            aged.append((path.stat().st_mtime_ns, path))
    aged.sort(reverse=True)
    doomed += [path for _, path in aged[max(keep - 1, 0) :]]
    deleted = []
    for path in doomed:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # another user's file in a shared folder: leave it
            logger.debug("cannot delete stale optimised graph %s: %s", path, exc)
            continue
        deleted.append(path)
    if deleted:
        logger.info("deleted %d stale optimised graph(s) beside %s", len(deleted), target)
    return deleted


def _optimise_and_open(
    onnx_path: Path,
    target: Path,
    providers: list[str],
    threads: int | None,
    model_config: Mapping[str, Any],
    spin: bool,
) -> ort.InferenceSession:
    source = _transformer_fused(onnx_path, providers, model_config, target.parent) or onnx_path
    options = session_options(threads, optimize=True, spin=spin)
    temp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=target.parent)
        os.close(fd)
        temp = Path(name)
        options.optimized_model_filepath = str(temp)
    except OSError as exc:
        logger.warning(
            "cannot save the optimised graph to %s (%s); optimising in memory", target, exc
        )
    try:
        disabled = list(SLOW_CPU_FUSIONS) if providers[0] == "CPUExecutionProvider" else []
        session = ort.InferenceSession(
            str(source), options, providers=providers, disabled_optimizers=disabled
        )
        if temp is not None and temp.is_file() and temp.stat().st_size > 0:
            temp.chmod(0o644)
            os.replace(temp, target)  # atomic: concurrent loaders never see a partial file
            temp = None
            logger.info("saved optimised graph to %s", target)
        return session
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
        if source != onnx_path:
            source.unlink(missing_ok=True)


def _transformer_fused(
    onnx_path: Path, providers: list[str], model_config: Mapping[str, Any], work_dir: Path
) -> Path | None:
    """Fuse attention/LayerNorm/GELU with onnxruntime's transformer optimizer, if ``onnx`` exists.

    Returns a temporary file the caller deletes, or None when fusion is unavailable or fails (the
    ORT_ENABLE_ALL pass still applies its own fusions then).
    """
    if providers[0] != "CPUExecutionProvider":
        return None
    try:
        import onnx
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        from bridge.models.ort_log_noise import (
            OPTIMIZER_LOGGER,
            PRODUCER_MISMATCH,
            dropped_ort_messages,
        )
    except ImportError:
        logger.debug("onnx not installed; skipping transformer fusions")
        return None
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        if any(node.op_type in _QUANTIZED_OPS for node in graph.node):
            # Measured: on dynamically quantized graphs the fusions change scores (up to 6e-3)
            # and do not fuse attention, so ORT's own pass is used alone.
            return None
        # Attention fusion needs the head count and width; HF config.json names them.
        num_heads = model_config.get("num_attention_heads", 0)
        hidden_size = model_config.get("hidden_size", 0)
        fusions = FusionOptions("bert")
        # The fused SkipLayerNormalization kernel is the slow one (see SLOW_CPU_FUSIONS).
        fusions.enable_skip_layer_norm = False
        fusions.enable_bias_skip_layer_norm = False
        with dropped_ort_messages(PRODUCER_MISMATCH, loggers=(OPTIMIZER_LOGGER,)):
            model = optimize_model(
                str(onnx_path),
                model_type="bert",
                optimization_options=fusions,
                num_heads=num_heads if isinstance(num_heads, int) else 0,
                hidden_size=hidden_size if isinstance(hidden_size, int) else 0,
                opt_level=0,
                use_gpu=False,
            )
        work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-fused-", suffix=".onnx", dir=work_dir)
        os.close(fd)
        model.save_model_to_file(name)
        return Path(name)
    except Exception as exc:  # the optimizer raises many kinds on unfamiliar graphs
        logger.info("transformer fusion skipped for %s: %s", onnx_path, exc)
        return None
