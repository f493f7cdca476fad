"""`rerank-bridge` command line: one sub-command group per module, each with its own `register`.

argparse keeps the core install free of CLI dependencies; every command turns a BridgeError into a
one-line message and exit code 2, so no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from bridge.errors import BridgeError

# name of the sub-command -> module under bridge.cli that defines register(subparsers)
_COMMAND_MODULES = ("models", "node", "serve", "connect", "eval", "embed", "train", "distill")

# Top-level module of an optional dependency -> the extra that installs it.
_EXTRA_OF_MODULE = {
    "elasticsearch": "elasticsearch",
    "opensearchpy": "opensearch",
    "starlette": "proxy",
    "uvicorn": "proxy",
    "httpx": "proxy",
    "httpcore": "proxy",
    "prometheus_client": "proxy",
    "yaml": "proxy",
    "onnx": "convert",
    "safetensors": "convert",
    "ir_measures": "eval",
    "matplotlib": "eval",
    "rich": "eval",
    "tqdm": "eval",
    "torch": "train",
    "transformers": "train",
}


def _missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    top = (exc.name or "").split(".")[0]
    extra = _EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"this command needs {top!r}: pip install 'rerank-bridge[{extra}]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank-bridge",
        description="Local ONNX reranking for Elasticsearch and OpenSearch.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"bridge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("bridge.cli"):
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.handler(args)
    except BridgeError as exc:
        print(f"rerank-bridge: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = _missing_extra_message(exc)
        if message is None:
            raise
        print(f"rerank-bridge: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("rerank-bridge: interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
