"""`rerank-bridge distill`: a faster student that learns a trained cross-encoder's scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.cli.training_args import (
    add_shared_args,
    engine_url,
    print_outcome,
    quiet_clients,
    shared_options,
    sigterm_as_ctrl_c,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="make a smaller, faster cross-encoder from a teacher (the `train` extra)",
        description="The teacher scores the engine's BM25 top-k for each query (no labels "
        "needed); a student made of a few of the teacher's layers learns those scores with a "
        "listwise KL loss. Writes the same model folder and report as `train`.",
    )
    parser.add_argument("--teacher", type=Path, required=True, help="a folder written by train")
    parser.add_argument(
        "--queries", type=Path, required=True, help="queries: one per line, BEIR JSONL or TSV"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="judgments: evaluate teacher and student on the teacher's held-out queries (and "
        "index their passages when --index is not given)",
    )
    parser.add_argument("--student-layers", type=int, default=2, help="layers the student keeps")
    parser.add_argument(
        "--layers",
        type=_layers,
        help="the teacher layers the student keeps, e.g. 0,1 (default: --student-layers "
        "spread over the teacher's depth, first and last kept)",
    )
    parser.add_argument("--pairs", type=int, help="at most N (query, passage) pairs")
    parser.add_argument(
        "--scores",
        type=Path,
        help="teacher scores file (JSONL): read if it exists (no engine or teacher work), else "
        "written, so several students can learn from one scoring",
    )
    parser.add_argument("--depth", type=int, default=20, help="engine hits per query")
    parser.add_argument(
        "--loss",
        choices=("kl", "margin", "mse"),
        default="kl",
        help="kl: listwise KL over each query's list (+ --mse-weight x MSE on the logits); "
        "margin: margin-MSE over every pair of a list; mse: MSE on the logits",
    )
    parser.add_argument("--mse-weight", type=float, default=0.1, help="weight of the logit MSE")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    add_shared_args(parser, lr=1e-4, batch_size=40)
    parser.set_defaults(handler=run)


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer numbers like 0,1, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from bridge.training.distill import DistillOptions, run_distill
    from bridge.training.engine import require_engine

    quiet_clients(args.verbose)
    options = DistillOptions(
        teacher=args.teacher,
        queries=args.queries,
        data=args.data,
        student_layers=args.student_layers,
        layers=args.layers,
        pairs=args.pairs,
        scores=args.scores,
        depth=args.depth,
        loss=args.loss,
        mse_weight=args.mse_weight,
        temperature=args.temperature,
        **shared_options(args, require_engine(engine_url(args), "distill")),
    )
    with sigterm_as_ctrl_c():
        return print_outcome(args.out, run_distill(options))
