"""`rerank-bridge train`: a domain cross-encoder from your own judgments (the `train` extra)."""

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
    add_shared_args(parser, lr=4e-5, batch_size=32)
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
    parser.add_argument(
        "--loss",
        default="pointwise",
        help="pointwise (BCE on graded targets, shuffled pairs) or listwise (batches of whole "
        "query groups: softmax cross-entropy, target proportional to the graded target, "
        "plus --pointwise-weight x BCE)",
    )
    parser.add_argument(
        "--pointwise-weight",
        type=float,
        default=1.0,
        help="weight of the BCE term beside the listwise loss (keeps scores calibrated for "
        "the fusion modes)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bridge.training.listwise import LossSettings
    from bridge.training.pairs import NegativeSettings
    from bridge.training.train import TrainOptions, run_train

    quiet_clients(args.verbose)
    options = TrainOptions(
        data=args.data,
        base=args.base,
        negatives=NegativeSettings(
            per_query=args.negatives,
            depth=args.negative_depth,
            skip_top=args.negative_skip,
            target=args.negative_target,
            random_per_query=args.random_negatives,
        ),
        loss=LossSettings(kind=args.loss, pointwise_weight=args.pointwise_weight),
        max_pairs=args.max_pairs,
        holdout=args.holdout,
        holdout_sample=args.holdout_sample,
        sample_seed=args.sample_seed,
        **shared_options(args, engine_url(args)),
    )
    with sigterm_as_ctrl_c():
        return print_outcome(args.out, run_train(options))
