"""`rerank-bridge distill`: a smaller, faster cross-encoder that learns a teacher's scores.

No labels: any query log works. For each query the engine's BM25 top-``depth`` is scored by the
teacher (its ONNX graph, through the product's own scorer), and a student made of a few of the
teacher's layers (spread over its depth, first and last kept) learns those scores.

Loss (``--loss``): ``kl`` (the default) is the listwise KL divergence between softmax(teacher
logits) and softmax(student logits) over each query's list, plus a small MSE on the logits;
``margin`` is margin-MSE over every pair of hits of a list; ``mse`` is the MSE on the logits. Why
listwise KL by default: the rerank stage only ever orders one query's window of hits, KL over the
whole window uses every scored candidate at once (margin-MSE sees pairs: here all n x n of a list,
no sampling) and, like margin-MSE, is blind to a constant shift of the teacher's scores, while its
softmax weighs the hits the teacher puts on top, which is what NDCG@10 counts. The MSE term
(weight ``mse_weight``) keeps the student's scores on the teacher's scale, which matters for
score-combining fusions (linear, rescore) and for thresholds. On the Home Depot lab runs
(benchmarks/README.md, "Distillation lab") the three losses did equally badly with a 2-layer
student: none is the reason it fails, so the default stays.
"""

from __future__ import annotations

import datetime
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import EvalError, TrainingError
from bridge.training import engine as engine_mod
from bridge.training.output import check_out, publish, staging
from bridge.training.report import (
    plot_training,
    read_training_json,
    write_results,
    write_training_json,
)
from bridge.training.torch_model import FitSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillOptions:
    teacher: Path
    queries: Path
    out: Path
    engine: str
    index: str | None = None
    data: Path | None = None  # judgments: a temporary index if no --index, and the held-out eval
    student_layers: int = 2
    layers: tuple[int, ...] | None = None  # the teacher layers to keep; default: spread
    pairs: int | None = None
    scores: Path | None = None  # teacher scores: read when the file exists, else written
    depth: int = 20
    loss: str = "kl"  # "kl" (listwise KL + mse_weight x MSE), "margin" (margin-MSE), "mse"
    mse_weight: float = 0.1
    temperature: float = 1.0
    fit: FitSettings = field(default_factory=lambda: FitSettings(lr=1e-4, batch_size=40))
    eval_queries: int = 300
    eval_window: int = 50
    int8: bool = False
    overwrite: bool = False


def read_query_file(path: Path) -> list[str]:
    """Query texts: one per line (``.txt``), BEIR JSONL or ``qid<TAB>text``; duplicates dropped."""
    if not path.is_file():
        raise TrainingError(f"{path}: queries file not found")
    if path.suffix in (".jsonl", ".tsv"):
        from bridge.eval.datasets import load_queries

        try:
            texts = list(load_queries(path).values())
        except EvalError as exc:
            raise TrainingError(str(exc)) from None
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    seen: dict[str, None] = {}
    for text in texts:
        if text:
            seen.setdefault(text, None)
    if not seen:
        raise TrainingError(f"{path}: no queries")
    return list(seen)


def check_teacher(teacher: Path) -> None:
    from bridge.training.torch_model import check_base

    if not (teacher / "rerank_bridge.json").is_file():
        raise TrainingError(
            f"{teacher}: not a model folder written by `rerank-bridge train` "
            "(no rerank_bridge.json)"
        )
    check_base(teacher)


def run_distill(options: DistillOptions) -> dict[str, Any]:
    from bridge.training.judgments import load_judgments
    from bridge.training.split import split_queries

    started = time.perf_counter()
    check_out(options.out, options.overwrite)
    check_teacher(options.teacher)
    if options.student_layers < 1 or options.depth < 2:
        raise TrainingError("--student-layers must be >= 1 and --depth >= 2")
    distill_loss(options.loss)  # an unknown loss fails before any work
    texts = read_query_file(options.queries)
    from bridge.training.torch_model import require_stack

    require_stack()
    teacher_record = read_training_json(options.teacher)
    judgments = load_judgments(options.data) if options.data is not None else None
    split = None
    if judgments is not None:
        split_info = teacher_record.get("split", {})
        from bridge.training.train import pinned_sample

        pinned = split_info.get("pinned_sample", {})
        split = split_queries(
            judgments.queries,
            float(split_info.get("holdout", 0.1)),
            pinned_sample(
                options.data or Path(), int(pinned.get("count", 0)), int(pinned.get("seed", 13))
            ),
        )
        held = {judgments.queries[q] for q in split.held_out}
        dropped = [t for t in texts if t in held]
        if dropped:
            logger.warning("%d queries are held out for the eval; not distilled on", len(dropped))
        texts = [t for t in texts if t not in held]
    rng = random.Random(options.fit.seed)
    rng.shuffle(texts)
    if options.pairs is not None:
        texts = texts[: max(1, math.ceil(options.pairs / options.depth))]
    client = engine_mod.connect_engine(options.engine)
    try:
        with staging(options.out) as stage:
            if options.index is None and judgments is None:
                raise TrainingError("distill needs --index NAME (or --data to index its passages)")
            if options.index is None:
                assert judgments is not None
                context = engine_mod.passage_index(
                    client, judgments, None, progress=options.fit.progress
                )
            else:
                from bridge.training.judgments import Judgments

                empty = Judgments("index", {}, {}, {}, 1, ("title", "text"), "")
                context = engine_mod.passage_index(
                    client, empty, options.index, progress=options.fit.progress
                )
            with context as (index, fields):
                record = _distill_in(stage, options, texts, client, index, fields, judgments, split)
            record["wall_seconds"] = round(time.perf_counter() - started, 1)
            record["teacher_training"] = {
                k: teacher_record[k]
                for k in ("data", "base", "seed", "split")
                if k in teacher_record
            }
            write_training_json(stage / options.out.name, record)
            publish(stage / options.out.name, options.out)
    finally:
        client.close()
    return record


def teacher_logits(
    teacher: Path, lists: Sequence[tuple[str, Sequence[str]]], progress: bool
) -> list[list[float]]:
    """The teacher's logits for every (query, passage) of each list, with the product's scorer."""
    from bridge.eval.progress import progress_bar
    from bridge.ranker import Ranker

    ranker = Ranker(model_name=str(teacher))
    out: list[list[float]] = []
    total = sum(len(passages) for _, passages in lists)
    bar = progress_bar(total, desc="teacher scores", unit="pair", enabled=progress)
    try:
        for query, passages in lists:
            probs = ranker.score_pairs([(query, p) for p in passages])
            out.append([_logit(p) for p in probs])
            bar.update(len(passages))
    finally:
        bar.close()
    return out


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p) - math.log1p(-p)


def _distill_in(
    stage: Path,
    options: DistillOptions,
    texts: list[str],
    client: Any,
    index: str,
    fields: Sequence[str],
    judgments: Any,
    split: Any,
) -> dict[str, Any]:
    from bridge.training import torch_model as tm
    from bridge.training.train import evaluate_heldout, export

    if options.scores is not None and options.scores.is_file():
        # the file's lists as they are, but only the queries this run may use (not held out)
        allowed = set(texts)
        read_lists, read_logits = read_scores(options.scores)
        read = [
            (item, logits)
            for item, logits in zip(read_lists, read_logits, strict=True)
            if item[0] in allowed
        ]
        if not read:
            raise TrainingError(f"{options.scores}: none of its queries is in --queries")
        lists, scores = [lst for lst, _ in read], [sc for _, sc in read]
        logger.info("%d teacher-scored lists read from %s", len(lists), options.scores)
    else:
        lists = engine_lists(client, index, fields, texts, options)
        scores = teacher_logits(options.teacher, lists, options.fit.progress)
        if options.scores is not None:
            write_scores(options.scores, lists, scores)
    if options.pairs is not None:
        lists, scores = _first_pairs(lists, scores, options.pairs)

    teacher_layers = tm.layer_count(options.teacher)
    keep = student_layers(teacher_layers, options)
    tm.seed_everything(options.fit.seed)
    tm.set_threads(options.fit.threads)
    student = tm.load_cross_encoder(options.teacher, layers=keep)
    encoder = tm.PairEncoder(options.teacher / "tokenizer.json", options.fit.max_length)
    groups = list(zip(lists, scores, strict=True))
    log = tm.fit(
        student,
        encoder,
        lambda epoch: list_batches(groups, options.fit.batch_size, options.fit.seed + epoch),
        distill_loss(options.loss, options.temperature, options.mse_weight),
        options.fit,
        desc="distilling",
    )
    final = stage / options.out.name
    export(student, options.teacher, final, options.int8, options.fit.max_length)

    heldout: dict[str, Any] = {"queries": 0, "ndcg@10": {}, "report": None}
    labels = {
        options.teacher.name: f"the teacher ({teacher_layers} layers)",
        final.name: f"the student (layers {keep} of the teacher)",
        "bm25": "the engine alone",
    }
    if judgments is not None and split is not None:
        heldout = evaluate_heldout(
            judgments,
            split,
            [options.teacher, final],
            client=client,
            index=index,
            fields=fields,
            options=options,
            out=final,
        )
    summary = {
        "teacher": str(options.teacher),
        "queries": f"{len(lists):,} from {options.queries}",
        "pairs scored by the teacher": f"{log.pairs // options.fit.epochs:,}",
        "student layers": f"{len(keep)} (teacher layers {keep} of {teacher_layers})",
        "loss": loss_label(options),
        "epochs, batch, lr, max length": (
            f"{options.fit.epochs}, {options.fit.batch_size}, {options.fit.lr:g}, "
            f"{options.fit.max_length}"
        ),
        "seed": options.fit.seed,
        "training time": (
            f"{log.seconds:.0f} s ({log.pairs_per_second:.1f} pairs/s, {log.precision})"
        ),
    }
    plot_training(final, log, heldout["ndcg@10"], {})
    write_results(final, f"Distilling {options.out.name}", summary, heldout["report"], labels)
    return {
        "kind": "distill",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "teacher": str(options.teacher),
        "queries_file": str(options.queries),
        "queries": len(lists),
        "depth": max((len(passages) for _, passages in lists), default=options.depth),
        "student_layers": keep,
        "loss": {
            "name": options.loss,
            "listwise_kl_temperature": options.temperature,
            "mse_weight": options.mse_weight,
        },
        "seed": options.fit.seed,
        "fit": asdict(options.fit),
        "log": log.record(),
        "heldout": {k: v for k, v in heldout.items() if k != "report"},
        "engine_index": options.index or "temporary",
    }


def engine_lists(
    client: Any, index: str, fields: Sequence[str], texts: Sequence[str], options: DistillOptions
) -> list[tuple[str, list[str]]]:
    """Each query with its engine top-``depth`` passages (queries with fewer than 2 dropped)."""
    found = engine_mod.bm25_top_k(
        client,
        index,
        fields,
        texts,
        options.depth,
        progress=options.fit.progress,
        desc="engine top-k",
    )
    lists = [(q, [p for _, p in hits if p]) for q, hits in zip(texts, found, strict=True)]
    lists = [(q, ps) for q, ps in lists if len(ps) >= 2]
    if not lists:
        raise TrainingError("the engine found fewer than 2 passages for every query")
    if options.pairs is not None:
        lists, _ = _first_pairs(lists, [[] for _ in lists], options.pairs)
    return lists


def _first_pairs(
    lists: list[tuple[str, list[str]]], scores: list[list[float]], pairs: int
) -> tuple[list[tuple[str, list[str]]], list[list[float]]]:
    """The first whole lists holding at most ``pairs`` pairs (at least one list)."""
    count = 0
    for number, (_, passages) in enumerate(lists):
        if number and count + len(passages) > pairs:
            return lists[:number], scores[:number]
        count += len(passages)
    return lists, scores


def student_layers(teacher_layers: int, options: DistillOptions) -> list[int]:
    from bridge.training.torch_model import spread_layers

    if options.layers is None:
        return spread_layers(teacher_layers, options.student_layers)
    keep = sorted(set(options.layers))
    if not keep or keep[0] < 0 or keep[-1] >= teacher_layers:
        raise TrainingError(
            f"--layers {','.join(map(str, options.layers))}: the teacher has layers "
            f"0..{teacher_layers - 1}"
        )
    return keep


def write_scores(
    path: Path, lists: Sequence[tuple[str, Sequence[str]]], scores: Sequence[Sequence[float]]
) -> None:
    """One JSON line per query: its passages and the teacher's logits (reused by --scores)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for (query, passages), logits in zip(lists, scores, strict=True):
            line = {"query": query, "passages": list(passages), "teacher": list(logits)}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    partial.replace(path)


def read_scores(path: Path) -> tuple[list[tuple[str, list[str]]], list[list[float]]]:
    from bridge.eval.datasets import jsonl_records

    lists: list[tuple[str, list[str]]] = []
    scores: list[list[float]] = []
    for number, record in jsonl_records(path, TrainingError):
        query, passages, logits = record.get("query"), record.get("passages"), record.get("teacher")
        if (
            not isinstance(query, str)
            or not isinstance(passages, list)
            or not isinstance(logits, list)
            or len(passages) != len(logits)
            or len(passages) < 2
        ):
            raise TrainingError(
                f"{path}:{number}: expected {{query, passages, teacher}} with as many "
                "teacher scores as passages (at least 2)"
            )
        lists.append((query, [str(p) for p in passages]))
        scores.append([float(x) for x in logits])
    if not lists:
        raise TrainingError(f"{path}: no teacher scores")
    return lists, scores


Group = tuple[tuple[str, list[str]], list[float]]  # (query, passages), the teacher's logits


def list_batches(groups: Sequence[Group], batch_size: int, seed: int) -> list[Any]:
    """Batches of whole lists, about ``batch_size`` pairs each (at least one list), similar
    lengths together: (pairs, the lists' teacher logits) as the distill losses take them."""
    from bridge.training import torch_model as tm

    longest = max(len(passages) for (_, passages), _ in groups)
    chunks = tm.length_buckets(
        groups,
        max(1, batch_size // longest),
        lambda g: max(len(g[0][0]) + len(p) for p in g[0][1]),
        seed,
    )
    return [([(q, p) for (q, ps), _ in c for p in ps], [s for _, s in c]) for c in chunks]


LOSSES = ("mse", "margin", "kl")


def distill_loss(name: str, temperature: float = 1.0, mse_weight: float = 0.1) -> Any:
    """The loss ``name`` as ``fit`` takes it: (student logits, the lists' teacher logits)."""
    if name == "mse":
        return pointwise_mse_loss
    if name == "margin":
        return margin_mse_loss
    if name == "kl":
        return lambda logits, lists: listwise_kl_loss(logits, lists, temperature, mse_weight)
    raise TrainingError(f"--loss must be one of {', '.join(LOSSES)}, got {name!r}")


def loss_label(options: DistillOptions) -> str:
    if options.loss == "kl":
        return f"listwise KL (T={options.temperature:g}) + {options.mse_weight:g} x MSE on logits"
    if options.loss == "margin":
        return "margin-MSE over every pair of hits of a list"
    return "MSE on the logits"


def pointwise_mse_loss(logits: Any, lists: Sequence[Sequence[float]]) -> Any:
    """Mean squared error between the student's and the teacher's logits, every pair alike."""
    import torch

    target = torch.tensor([x for teacher in lists for x in teacher], dtype=logits.dtype)
    return torch.mean((logits - target) ** 2)


def per_list(logits: Any, lists: Sequence[Sequence[float]]) -> Iterator[tuple[Any, Any]]:
    """(student logits, teacher logits) of each list of a batch, in order."""
    import torch

    start = 0
    for teacher in lists:
        yield logits[start : start + len(teacher)], torch.tensor(teacher, dtype=logits.dtype)
        start += len(teacher)


def margin_mse_loss(logits: Any, lists: Sequence[Sequence[float]]) -> Any:
    """Mean over lists of the MSE between student and teacher margins, over every pair of hits of
    the list (margin-MSE without pair sampling: a list of n gives n x n margins)."""
    total = logits.new_zeros(())
    for student, target in per_list(logits, lists):
        margins = student[:, None] - student[None, :]
        wanted = target[:, None] - target[None, :]
        total = total + ((margins - wanted) ** 2).mean()
    return total / max(1, len(lists))


def listwise_kl_loss(
    logits: Any, lists: Sequence[Sequence[float]], temperature: float, mse_weight: float
) -> Any:
    """Mean over lists of KL(softmax(teacher / T) || softmax(student / T)) + w x MSE(logits)."""
    import torch

    total = logits.new_zeros(())
    for student, target in per_list(logits, lists):
        log_p = torch.log_softmax(student / temperature, dim=0)
        q = torch.softmax(target / temperature, dim=0)
        total = total + torch.sum(q * (torch.log(q.clamp_min(1e-12)) - log_p)) * temperature**2
        if mse_weight:
            total = total + mse_weight * torch.mean((student - target) ** 2)
    return total / max(1, len(lists))
