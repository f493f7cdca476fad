"""The options `train` and `distill` share, added and read in one place."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from bridge.cli.eval import ENGINE_ENV


def add_shared_args(parser: argparse.ArgumentParser, *, lr: float, batch_size: int) -> None:
    """--out, the engine, the fit settings (defaults ``lr``/``batch_size``), the held-out eval
    and the output switches."""
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--engine", help=f"Elasticsearch/OpenSearch URL (default: ${ENGINE_ENV})")
    parser.add_argument(
        "--index",
        help="index of the passages (ids = the judgments' ids); default: a temporary index of "
        "the data's passages",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per query+passage")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--head-lr-scale",
        type=float,
        default=1.0,
        help="learning rate multiplier of the pooler and classification head (both untrained "
        "on a bi-encoder base)",
    )
    parser.add_argument(
        "--train-word-embeddings",
        action="store_true",
        help="also train the word-embedding table (frozen by default)",
    )
    parser.add_argument(
        "--warmup", type=float, default=0.1, help="fraction of the steps that warm the lr up"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="forward pass in bf16 autocast or fp32 (weights stay fp32; the ONNX export is "
        "fp32); auto: bf16 where the CPU has native bf16 (avx512_bf16/amx_bf16), ~1.5x faster",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--eval-queries", type=int, default=300, help="held-out queries to eval (0: no eval)"
    )
    parser.add_argument("--eval-window", type=int, default=50, help="rerank window of that eval")
    parser.add_argument("--int8", action="store_true", help="also write the int8 graph and use it")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def shared_options(args: argparse.Namespace, engine: str | None) -> dict[str, Any]:
    """The fields of TrainOptions / DistillOptions that the shared arguments set."""
    from bridge.training.torch_model import FitSettings

    return {
        "out": args.out,
        "engine": engine,
        "index": args.index,
        "fit": FitSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            max_length=args.max_length,
            seed=args.seed,
            warmup=args.warmup,
            head_lr_scale=args.head_lr_scale,
            train_word_embeddings=args.train_word_embeddings,
            threads=args.threads,
            precision=args.precision,
            progress=not args.no_progress,
        ),
        "eval_queries": args.eval_queries,
        "eval_window": args.eval_window,
        "int8": args.int8,
        "overwrite": args.overwrite,
    }


def engine_url(args: argparse.Namespace) -> str | None:
    return args.engine or os.environ.get(ENGINE_ENV) or None


def quiet_clients(verbose: bool) -> None:
    if not verbose:  # one INFO line per HTTP request drowns the progress bars
        for name in ("elastic_transport", "opensearch", "httpx", "bridge.models.convert"):
            logging.getLogger(name).setLevel(logging.WARNING)


def print_outcome(out: Path, record: dict[str, Any]) -> int:
    print(json.dumps({"out": str(out), "heldout": record["heldout"]}, indent=2))
    print(f"report: {out / 'results.md'}")
    return 0


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, a CI or scheduler timeout) unwinds like Ctrl-C: the staging folder and a
    temporary index are removed, ``--out`` stays as it was, and `main` prints one line (exit 130).
    Without it, SIGTERM ends the process at once, leaving ``.<out>.partial-*`` beside ``--out``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
