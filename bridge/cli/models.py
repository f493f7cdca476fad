"""`rerank-bridge models list | download NAME | info PATH_OR_NAME | convert HF_DIR --out DIR`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bridge.config import DEFAULT_MODEL
from bridge.errors import ModelError, ModelNotFoundError
from bridge.models.cache_dir import default_cache_dir
from bridge.models.download import download_model
from bridge.models.local import ModelFiles, known_cache_dir, missing_files
from bridge.models.local_folders import MODELS_ENV, find_local_models
from bridge.models.registry import KNOWN_MODELS, known_model_names
from bridge.models.resolver import resolve_model


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, download, inspect and convert models",
        description="Manage the model cache: FlashRank's models by name, or any local ONNX model.",
    )
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="known model names (size class, cached or not) and local model folders",
        description="FlashRank's names, then the local model folders found in "
        f"${MODELS_ENV} (folders separated by ':'), the cache, the project's .cache/models "
        "(make models) and ../shared/models, with kind and size.",
    )
    _cache_dir_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=run_list)

    download = commands.add_parser("download", help="download a known model into the cache")
    download.add_argument("name", metavar="NAME", help=f"one of: {', '.join(known_model_names())}")
    _cache_dir_option(download)
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(handler=run_download)

    info = commands.add_parser("info", help="kind, files, inputs/outputs, size, max_length")
    info.add_argument("model", metavar="PATH_OR_NAME", help="model directory, .onnx file or name")
    _cache_dir_option(info)
    info.add_argument(
        "--download", action="store_true", help="download a known model that is not cached yet"
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=run_info)

    convert = commands.add_parser(
        "convert",
        help="convert a Hugging Face BERT-family checkpoint (safetensors) to ONNX",
        description="Build the ONNX graph without PyTorch and check it against a numpy reference "
        "forward pass. Needs the 'convert' extra: pip install 'rerank-bridge[convert]'.",
    )
    convert.add_argument("hf_dir", metavar="HF_DIR", help="checkpoint folder (config.json, ...)")
    convert.add_argument("--out", required=True, metavar="DIR", help="output folder")
    convert.add_argument(
        "--kind", choices=("cross", "bi"), help="force the kind (default: from the checkpoint)"
    )
    convert.add_argument("--int8", action="store_true", help="also quantize to int8 and use it")
    convert.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    convert.set_defaults(handler=run_convert)


def _cache_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"model cache (default: {default_cache_dir()}; env RERANK_BRIDGE_CACHE)",
    )


def run_list(args: argparse.Namespace) -> int:
    cache: Path = args.cache_dir or default_cache_dir()
    rows = [
        {
            "name": known.name,
            "default": known.name == DEFAULT_MODEL,
            "size_class": known.size_class,
            "approx_size_mb": known.approx_size_mb,
            "cached": not missing_files(known_cache_dir(known.name, cache), known),
            "description": known.description,
        }
        for known in (KNOWN_MODELS[name] for name in known_model_names())
    ]
    local = [
        {
            "path": str(model.path),
            "kind": model.kind,
            "size_mb": round(model.size_bytes / 1e6, 1),
            "source": model.source,
        }
        for model in find_local_models(cache)
    ]
    if args.json:
        print(json.dumps({"cache_dir": str(cache), "models": rows, "local": local}, indent=2))
        return 0
    print(f"cache: {cache}")
    _print_table(
        ("NAME", "SIZE", "CACHED", "DESCRIPTION"),
        [
            (
                f"{row['name']}{' (default)' if row['default'] else ''}",
                f"{row['size_class']} ~{row['approx_size_mb']}MB",
                "yes" if row["cached"] else "no",
                str(row["description"]),
            )
            for row in rows
        ],
    )
    print()
    if not local:
        print(f"local model folders: none found (set {MODELS_ENV} to folders holding models)")
        return 0
    print("local model folders (use the path as the model):")
    _print_table(
        ("PATH", "KIND", "ON DISK", "FOUND IN"),
        [
            (str(row["path"]), f"{row['kind']}-encoder", f"{row['size_mb']} MB", str(row["source"]))
            for row in local
        ],
    )
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header) - 1)]
    for line in [header, *rows]:
        cells = [f"{cell:<{width}}" for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))


def run_download(args: argparse.Namespace) -> int:
    try:
        directory = download_model(args.name, cache_dir=args.cache_dir, progress=not args.quiet)
    except OSError as exc:
        raise ModelError(f"cannot download {args.name}: {exc}") from exc
    print(directory)
    return 0


def describe(files: ModelFiles) -> dict[str, Any]:
    """What `models info` shows, as plain data."""
    return {
        "name": files.name,
        "kind": files.kind,
        "directory": str(files.directory),
        "onnx": str(files.onnx_path),
        "tokenizer": str(files.tokenizer_path),
        "size_bytes": files.size_bytes,
        "max_length": files.max_length,
        "num_labels": files.num_labels,
        "output": files.output_name,
        "pooling": files.pooling,
        "inputs": [t.describe() for t in files.inputs],
        "outputs": [t.describe() for t in files.outputs],
    }


def _print_info(info: dict[str, Any]) -> None:
    kind = "cross-encoder" if info["kind"] == "cross" else "bi-encoder"
    if info["kind"] == "cross" and info["num_labels"]:
        scoring = "sigmoid" if info["num_labels"] == 1 else "softmax"
        kind += f" ({info['num_labels']} label(s), {scoring})"
    elif info["kind"] == "bi":
        kind += f" (pooling: {info['pooling'] or 'in graph'}, cosine)"
    lines = [
        ("name", info["name"]),
        ("kind", kind),
        ("directory", info["directory"]),
        ("onnx", f"{info['onnx']} ({info['size_bytes'] / 1e6:.1f} MB)"),
        ("tokenizer", info["tokenizer"]),
        ("max_length", str(info["max_length"])),
        ("inputs", ", ".join(info["inputs"])),
        ("outputs", ", ".join(info["outputs"]) + f"  (scored: {info['output']})"),
    ]
    for label, value in lines:
        print(f"{label + ':':<11} {value}")


def run_info(args: argparse.Namespace) -> int:
    try:
        files = resolve_model(args.model, cache_dir=args.cache_dir, download=args.download)
        info = describe(files)
    except OSError as exc:
        raise ModelError(f"cannot read {args.model}: {exc}") from exc
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    try:
        from bridge.models.convert import convert_checkpoint
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise ModelError(
            f"`models convert` needs the 'convert' extra (missing: {missing}); "
            "install it with: pip install 'rerank-bridge[convert]'"
        ) from exc
    source = Path(args.hf_dir).expanduser()
    if not source.is_dir():
        raise ModelNotFoundError(f"checkpoint directory {source} does not exist")
    try:
        result = convert_checkpoint(
            source, Path(args.out).expanduser(), kind=args.kind, int8=args.int8, opset=args.opset
        )
    except ImportError as exc:  # onnx/safetensors imported lazily inside the converter
        raise ModelError(
            f"`models convert` needs the 'convert' extra ({exc}); "
            "install it with: pip install 'rerank-bridge[convert]'"
        ) from exc
    except OSError as exc:
        raise ModelError(f"cannot convert {source}: {exc}") from exc
    print(f"wrote {result}")
    _print_info(describe(resolve_model(result)))
    return 0
