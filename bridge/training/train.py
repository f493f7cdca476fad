"""`rerank-bridge train`: fine-tune a cross-encoder on judgments and export it as a model folder.

Steps: read the judgments; split queries by hash (plus pinned held-out queries); with an engine,
take each training query's BM25 top-k as hard negatives; fine-tune (graded targets, binary
cross-entropy); export through the project's converter (safetensors -> ONNX, checked against the
numpy reference; ``--int8`` adds the quantized graph); evaluate the held-out queries before and
after with the product's eval; write training.json, results.md and training.png; rename the
staging folder to ``--out``.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError, TrainingError
from bridge.training import engine as engine_mod
from bridge.training.heldout import eval_queries, heldout_report, ndcg_by_model
from bridge.training.judgments import Judgments, load_judgments
from bridge.training.listwise import LossSettings
from bridge.training.output import check_out, publish, staging
from bridge.training.pairs import NegativeSettings, Pair, build_groups, build_pairs
from bridge.training.report import plot_training, write_results, write_training_json
from bridge.training.split import Split, split_queries
from bridge.training.torch_model import FitLog, FitSettings

logger = logging.getLogger(__name__)

TRAIN_QUERIES_FILE = "train_queries.txt"
HELDOUT_QUERIES_FILE = "heldout_queries.txt"


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    base: Path
    out: Path
    engine: str | None = None
    index: str | None = None
    fit: FitSettings = field(default_factory=FitSettings)
    negatives: NegativeSettings = field(default_factory=NegativeSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    max_pairs: int | None = None
    holdout: float = 0.1
    holdout_sample: int = 0  # also hold out the eval's seeded N-query sample of DATA
    sample_seed: int = 13
    eval_queries: int = 300
    eval_window: int = 50
    int8: bool = False
    overwrite: bool = False


def pinned_sample(data: Path, count: int, seed: int) -> list[str]:
    """Texts of the eval's (and the demo's) seeded query sample of ``data``: the same code."""
    if count <= 0:
        return []
    if not data.is_dir():
        raise TrainingError("--holdout-sample needs a dataset folder as --data")
    from bridge.eval.datasets import load_dataset

    return list(load_dataset(data, max_queries=count, seed=seed).queries.values())


def run_train(options: TrainOptions) -> dict[str, Any]:
    started = time.perf_counter()
    from bridge.training.torch_model import check_base, require_stack

    check_out(options.out, options.overwrite)
    judgments = load_judgments(options.data)
    check_base(options.base)
    require_stack()
    split = split_queries(
        judgments.queries,
        options.holdout,
        pinned_sample(options.data, options.holdout_sample, options.sample_seed),
    )
    logger.info(
        "%d queries: %d train, %d held out (%d pinned)",
        len(judgments.queries),
        len(split.train),
        len(split.held_out),
        len(split.pinned),
    )
    client = engine_mod.connect_engine(options.engine) if options.engine else None
    try:
        with staging(options.out) as stage:
            if client is None:
                record = _train_in(stage, options, judgments, split, None, None, ())
            else:
                with engine_mod.passage_index(
                    client, judgments, options.index, progress=options.fit.progress
                ) as (index, fields):
                    record = _train_in(stage, options, judgments, split, client, index, fields)
            record["wall_seconds"] = round(time.perf_counter() - started, 1)
            write_training_json(stage / options.out.name, record)
            publish(stage / options.out.name, options.out)
    finally:
        if client is not None:
            client.close()
    return record


def _train_in(
    stage: Path,
    options: TrainOptions,
    judgments: Judgments,
    split: Split,
    client: Any | None,
    index: str | None,
    fields: Sequence[str],
) -> dict[str, Any]:
    from bridge.training import torch_model as tm

    hits = None
    used = used_queries(judgments, split.train, options)
    if client is not None and index is not None and options.negatives.per_query:
        texts = [judgments.queries[q] for q in used]
        found = engine_mod.bm25_top_k(
            client,
            index,
            fields,
            texts,
            options.negatives.depth,
            progress=options.fit.progress,
            desc="hard negatives (BM25)",
        )
        hits = dict(zip(used, found, strict=True))
    negatives, seed, max_pairs = options.negatives, options.fit.seed, options.max_pairs
    groups: list[list[Pair]] = []  # whole query groups: listwise batches only
    if options.loss.kind == "listwise":
        groups = build_groups(
            judgments, used, hits=hits, negatives=negatives, seed=seed, max_pairs=max_pairs
        )
        pairs = [pair for group in groups for pair in group]
    else:  # the same pairs, shuffled (so pointwise runs repeat earlier ones)
        pairs = build_pairs(
            judgments, used, hits=hits, negatives=negatives, seed=seed, max_pairs=max_pairs
        )
    kinds = Counter(p.kind for p in pairs)
    logger.info("%d training pairs %s", len(pairs), dict(kinds))

    before = convert_for_eval(options.base, stage / f"base-{options.base.name}")
    tm.seed_everything(options.fit.seed)
    tm.set_threads(options.fit.threads)
    model = tm.load_cross_encoder(options.base)
    encoder = tm.PairEncoder(options.base / "tokenizer.json", options.fit.max_length)
    batches, loss_fn = objective(groups, pairs, options)
    log = tm.fit(model, encoder, batches, loss_fn, options.fit)
    final = stage / options.out.name
    export(model, options.base, final, options.int8, options.fit.max_length)

    heldout = evaluate_heldout(
        judgments,
        split,
        [m for m in (before, final) if m is not None],
        client=client,
        index=index,
        fields=fields,
        options=options,
        out=final,
    )
    labels = {
        **({before.name: f"the base model before training ({options.base})"} if before else {}),
        final.name: "the trained model",
        "bm25": "the engine alone",
    }
    summary = _summary(options, judgments, split, pairs, log)
    write_query_lists(final, judgments, split)
    plot_training(final, log, heldout["ndcg@10"], {})
    write_results(final, f"Training {options.out.name}", summary, heldout["report"], labels)
    return {
        "kind": "train",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "path": str(options.data),
            "source": judgments.source,
            "queries": len(judgments.queries),
            "judgments": judgments.pair_count,
        },
        "base": str(options.base),
        "seed": options.fit.seed,
        "fit": asdict(options.fit),
        "negatives": asdict(options.negatives),
        "loss": {**asdict(options.loss), "description": options.loss.describe()},
        "max_pairs": options.max_pairs,
        "pairs": dict(kinds),
        "split": split_record(options, split),
        "log": log.record(),
        "heldout": {k: v for k, v in heldout.items() if k != "report"},
        "versions": versions(),
        "engine_index": index if options.index else ("temporary" if client else None),
    }


def used_queries(judgments: Judgments, train: Sequence[str], options: TrainOptions) -> list[str]:
    """The training queries ``--max-pairs`` will reach (seeded order), so the engine is only
    asked for those; each brings its judged pairs plus at most its negatives."""
    import random

    if options.max_pairs is None:
        return list(train)
    order = list(train)
    random.Random(options.fit.seed).shuffle(order)
    per_query = options.negatives.per_query + options.negatives.random_per_query
    used: list[str] = []
    count = 0
    for qid in order:
        if used and count >= options.max_pairs:
            break
        used.append(qid)
        count += len(judgments.gains[qid]) + per_query
    return sorted(used)


def split_record(options: TrainOptions, split: Split) -> dict[str, Any]:
    return {
        "method": "sha256 of the normalised query text < holdout",
        "holdout": options.holdout,
        "train_queries": len(split.train),
        "heldout_queries": len(split.held_out),
        "pinned_queries": len(split.pinned),
        "pinned_sample": {"count": options.holdout_sample, "seed": options.sample_seed},
    }


def _summary(
    options: TrainOptions, judgments: Judgments, split: Split, pairs: Sequence[Pair], log: FitLog
) -> dict[str, Any]:
    kinds = Counter(p.kind for p in pairs)
    return {
        "data": judgments.source,
        "base": str(options.base),
        "queries (train / held-out / pinned)": (
            f"{len(split.train)} / {len(split.held_out)} / {len(split.pinned)}"
        ),
        "pairs": f"{len(pairs):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})",
        "epochs, batch, lr, max length": (
            f"{options.fit.epochs}, {options.fit.batch_size}, {options.fit.lr:g}, "
            f"{options.fit.max_length}"
        ),
        "loss": options.loss.describe(),
        "seed": options.fit.seed,
        "training time": (
            f"{log.seconds:.0f} s ({log.pairs_per_second:.1f} pairs/s, {log.precision})"
        ),
    }


def objective(
    groups: Sequence[Sequence[Pair]], pairs: Sequence[Pair], options: TrainOptions
) -> tuple[Callable[[int], list[Any]], Callable[[Any, Any], Any]]:
    """(batches of an epoch, loss) for ``options.loss``: shuffled pairs and BCE, or whole
    query groups and the listwise loss."""
    from bridge.training.listwise import group_batches, listwise_loss
    from bridge.training.torch_model import bce_loss

    size, seed, weight = options.fit.batch_size, options.fit.seed, options.loss.pointwise_weight
    if options.loss.kind == "listwise":
        return (
            lambda epoch: list(group_batches(groups, size, seed + epoch)),
            lambda logits, targets: listwise_loss(logits, targets, weight),
        )
    return lambda epoch: pointwise_batches(pairs, size, seed + epoch), bce_loss


def pointwise_batches(pairs: Sequence[Pair], size: int, seed: int) -> list[Any]:
    from bridge.training.torch_model import length_buckets

    batches = length_buckets(pairs, size, lambda p: len(p.query) + len(p.passage), seed)
    return [([(p.query, p.passage) for p in b], [p.target for p in b]) for b in batches]


def convert_for_eval(base: Path, out: Path) -> Path | None:
    """The base model as ONNX for the 'before' column (a bi-encoder base scores by cosine)."""
    from bridge.models.convert import convert_checkpoint

    try:
        convert_checkpoint(base, out)
    except BridgeError as exc:
        logger.warning("no 'before' figure: the base does not convert (%s)", exc)
        return None
    return out


def export(model: Any, tokenizer_dir: Path, out: Path, int8: bool, max_length: int) -> None:
    """safetensors (to train on or distill from) + ONNX through the project's converter."""
    from bridge.models.convert import convert_checkpoint
    from bridge.training.torch_model import save_checkpoint

    save_checkpoint(model, tokenizer_dir, out)
    convert_checkpoint(out, out, kind="cross", int8=int8)


def evaluate_heldout(
    judgments: Judgments,
    split: Split,
    models: Sequence[Path],
    *,
    client: Any | None,
    index: str | None,
    fields: Sequence[str],
    options: Any,
    out: Path,
) -> dict[str, Any]:
    from bridge.eval.api import write_outputs

    if not split.held_out or options.eval_queries <= 0:  # --eval-queries 0: no held-out eval
        return {"queries": 0, "ndcg@10": {}, "report": None}
    qids = eval_queries(
        judgments, split.held_out, split.pinned, options.eval_queries, options.fit.seed
    )
    report = heldout_report(
        judgments,
        qids,
        [str(m) for m in models],
        client=client,
        index=index,
        fields=fields or judgments.text_fields,
        window=options.eval_window,
        progress=options.fit.progress,
    )
    write_outputs(report, out / "heldout")
    return {
        "queries": len(qids),
        "window": options.eval_window if client is not None else None,
        "ndcg@10": ndcg_by_model(report),
        "mrr@10": {s.model or s.system: s.mean["mrr@10"] for s in report.systems},
        "report": report,
    }


def write_query_lists(out: Path, judgments: Judgments, split: Split) -> None:
    for name, qids in ((TRAIN_QUERIES_FILE, split.train), (HELDOUT_QUERIES_FILE, split.held_out)):
        text = "".join(judgments.queries[q].replace("\n", " ") + "\n" for q in qids)
        (out / name).write_text(text, encoding="utf-8")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {}
    for name in ("rerank-bridge", "torch", "transformers", "onnxruntime", "tokenizers"):
        with contextlib.suppress(md.PackageNotFoundError):
            found[name] = md.version(name)
    return found
