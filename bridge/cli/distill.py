"""`rerank-bridge distill`: a faster student that learns a trained cross-encoder's scores."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bridge.cli.train import ENGINE_ENV, add_engine_args, add_fit_args, quiet_clients


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
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_engine_args(parser)
    parser.add_argument(
        "--data",
        type=Path,
        help="judgments: evaluate teacher and student on the teacher's held-out queries (and "
        "index their passages when --index is not given)",
    )
    parser.add_argument("--student-layers", type=int, default=2, help="layers the student keeps")
    parser.add_argument("--pairs", type=int, help="at most N (query, passage) pairs")
    parser.add_argument("--depth", type=int, default=20, help="engine hits per query")
    parser.add_argument("--mse-weight", type=float, default=0.1, help="weight of the logit MSE")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    add_fit_args(parser, lr=1e-4, batch_size=40)
    parser.add_argument("--eval-queries", type=int, default=300, help="held-out queries to eval")
    parser.add_argument("--eval-window", type=int, default=50, help="rerank window of that eval")
    parser.add_argument("--int8", action="store_true", help="also write the int8 graph and use it")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bridge.cli.train import fit_settings
    from bridge.training.distill import DistillOptions, run_distill
    from bridge.training.engine import require_engine
    from bridge.training.torch_model import FitSettings

    quiet_clients(args.verbose)
    fit = fit_settings(args)
    assert isinstance(fit, FitSettings)
    options = DistillOptions(
        teacher=args.teacher,
        queries=args.queries,
        out=args.out,
        engine=require_engine(args.engine or os.environ.get(ENGINE_ENV), "distill"),
        index=args.index,
        data=args.data,
        student_layers=args.student_layers,
        pairs=args.pairs,
        depth=args.depth,
        mse_weight=args.mse_weight,
        temperature=args.temperature,
        fit=fit,
        eval_queries=args.eval_queries,
        eval_window=args.eval_window,
        int8=args.int8,
        overwrite=args.overwrite,
    )
    record = run_distill(options)
    print(json.dumps({"out": str(args.out), "heldout": record["heldout"]}, indent=2))
    print(f"report: {args.out / 'results.md'}")
    return 0
