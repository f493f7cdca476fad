"""`rerank-bridge train`: a domain cross-encoder from your own judgments (the `train` extra)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

ENGINE_ENV = "RERANK_BRIDGE_ES_URL"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a cross-encoder on judgments (pip install 'rerank-bridge[train]')",
        description="Fine-tune a BERT-family checkpoint into a cross-encoder on graded judgments, "
        "with BM25 hard negatives from the engine; evaluate held-out queries before and after; "
        "export an ONNX model folder that Ranker, the rerank section and the proxy load.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="Home Depot folder, BEIR folder (graded qrels), Cranfield folder, "
        'or a JSONL of {"query", "passage", "label" in [0, 1]}',
    )
    parser.add_argument(
        "--base",
        type=Path,
        required=True,
        help="checkpoint folder (safetensors, config, tokenizer)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_engine_args(parser)
    add_fit_args(parser, lr=4e-5, batch_size=32)
    parser.add_argument("--max-pairs", type=int, help="stop adding training queries at N pairs")
    parser.add_argument(
        "--holdout", type=float, default=0.1, help="fraction of queries held out (by hash)"
    )
    parser.add_argument(
        "--holdout-sample",
        type=int,
        default=0,
        help="also hold out the eval's seeded N-query sample of --data (the demo uses 100)",
    )
    parser.add_argument("--sample-seed", type=int, default=13, help="seed of that sample")
    parser.add_argument(
        "--negatives", type=int, default=4, help="BM25 hard negatives per query (with --engine)"
    )
    parser.add_argument(
        "--negative-depth", type=int, default=30, help="sample them from the BM25 top-N"
    )
    parser.add_argument(
        "--negative-skip",
        type=int,
        default=0,
        help="skip the first N BM25 hits (an unjudged top hit is the likeliest to be relevant)",
    )
    parser.add_argument(
        "--negative-target",
        type=float,
        default=0.0,
        help="target of a hard negative (above 0 if unjudged hits are often relevant)",
    )
    parser.add_argument(
        "--random-negatives", type=int, default=1, help="random collection passages per query"
    )
    parser.add_argument("--eval-queries", type=int, default=300, help="held-out queries to eval")
    parser.add_argument("--eval-window", type=int, default=50, help="rerank window of that eval")
    parser.add_argument("--int8", action="store_true", help="also write the int8 graph and use it")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(handler=run)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", help=f"Elasticsearch/OpenSearch URL (default: ${ENGINE_ENV})")
    parser.add_argument(
        "--index",
        help="index of the passages (ids = the judgments' ids); default: a temporary index of "
        "the data's passages",
    )


def add_fit_args(parser: argparse.ArgumentParser, *, lr: float, batch_size: int) -> None:
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per query+passage")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--head-lr-scale",
        type=float,
        default=1.0,
        help="learning rate multiplier of the classification head (new on a bi-encoder base)",
    )
    parser.add_argument(
        "--train-word-embeddings",
        action="store_true",
        help="also train the word-embedding table (frozen by default)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def fit_settings(args: argparse.Namespace) -> object:
    from bridge.training.torch_model import FitSettings

    return FitSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        seed=args.seed,
        head_lr_scale=args.head_lr_scale,
        train_word_embeddings=args.train_word_embeddings,
        threads=args.threads,
        progress=not args.no_progress,
    )


def quiet_clients(verbose: bool) -> None:
    if not verbose:  # one INFO line per HTTP request drowns the progress bars
        for name in ("elastic_transport", "opensearch", "httpx", "bridge.models.convert"):
            logging.getLogger(name).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    from bridge.training.pairs import NegativeSettings
    from bridge.training.torch_model import FitSettings
    from bridge.training.train import TrainOptions, run_train

    quiet_clients(args.verbose)
    fit = fit_settings(args)
    assert isinstance(fit, FitSettings)
    options = TrainOptions(
        data=args.data,
        base=args.base,
        out=args.out,
        engine=args.engine or os.environ.get(ENGINE_ENV),
        index=args.index,
        fit=fit,
        negatives=NegativeSettings(
            per_query=args.negatives,
            depth=args.negative_depth,
            skip_top=args.negative_skip,
            target=args.negative_target,
            random_per_query=args.random_negatives,
        ),
        max_pairs=args.max_pairs,
        holdout=args.holdout,
        holdout_sample=args.holdout_sample,
        sample_seed=args.sample_seed,
        eval_queries=args.eval_queries,
        eval_window=args.eval_window,
        int8=args.int8,
        overwrite=args.overwrite,
    )
    record = run_train(options)
    print(json.dumps({"out": str(args.out), "heldout": record["heldout"]}, indent=2))
    print(f"report: {args.out / 'results.md'}")
    return 0
