"""Distillation lab: one student from a teacher-scores file, judged on the demo's sample in torch.

`rerank-bridge distill --scores FILE` writes (or reuses) the teacher's logits for each training
query's BM25 top-k. This script trains one student from that file with the settings given (layers,
loss, lr, batch, epochs, how many lists) and, without exporting it, scores the BM25 top 50 of the
demo's Home Depot sample (``--max-queries 100 --seed 13``) with the teacher (ONNX, through
`bridge.Ranker`) and the student (PyTorch), then prints one JSON line: NDCG@10 of BM25, teacher and
student at windows 20 and 50 (fusion replace), the share of the teacher's gain the student keeps,
and the student's Spearman agreement with the teacher on those lists. Settings can be compared in
minutes on a small number of lists before a full `distill` run.

    .venv/bin/python benchmarks/distill_lab.py --teacher DIR --scores FILE --engine $ES \\
        --index NAME --layers 0,1 --loss mse --lr 1e-3 --lists 200

``--index`` is an index of the Home Depot catalogue (title field), as `rerank-bridge eval
--dataset` builds it; without it a temporary one is made and deleted.

Learning curve: ``--judge-on heldout`` judges on N held-out queries of `rerank-bridge train`'s
split instead (outside the teacher's training queries and outside the demo's sample, drawn as
`heldout_selection.py --random N` draws them), so settings are not tuned on the acceptance sample;
``--every K`` prints the same figures every K optimizer steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WINDOWS = (20, 50)


def ranked(scores: dict[str, list[float]], hits: dict[str, list[str]], window: int) -> Any:
    """Each query's hits with the top ``window`` reordered by ``scores`` (fusion replace)."""
    runs = {}
    for query, ids in hits.items():
        top = sorted(range(min(window, len(ids))), key=lambda i: -scores[query][i])
        runs[query] = [ids[i] for i in top] + ids[window:]
    return runs


def with_hidden_targets(student: Any, teacher: Any) -> Any:
    """The student, whose forward also leaves ``hidden_loss``: the MSE between its last [CLS]
    hidden state and the (frozen, eval-mode) teacher's, for the same batch."""
    import torch

    class Student(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = student
            self.base_model = student.base_model
            self.hidden_loss: Any = None
            for parameter in teacher.parameters():
                parameter.requires_grad_(False)
            self._teacher = [teacher.eval()]  # a list: not a submodule, so not trained

        def forward(self, **inputs: Any) -> Any:
            out = self.student(**inputs, output_hidden_states=True)
            with torch.no_grad():
                wanted = self._teacher[0](**inputs, output_hidden_states=True)
            self.hidden_loss = torch.mean(
                (out.hidden_states[-1][:, 0] - wanted.hidden_states[-1][:, 0]) ** 2
            )
            return out

    return Student()


def _logit(p: float) -> float:
    import math

    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p) - math.log1p(-p)


def spearman(a: list[float], b: list[float]) -> float:
    import numpy as np

    ranks_a = np.argsort(np.argsort(a))
    ranks_b = np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True, help="written by distill --scores")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--index", help="the Home Depot catalogue (default: a temporary index)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--layers", default="0,1", help="teacher layers the student keeps")
    parser.add_argument("--loss", choices=("mse", "margin", "kl"), default="mse")
    parser.add_argument("--temperature", type=float, default=1.0, help="listwise KL's T (kl)")
    parser.add_argument(
        "--mse-weight", type=float, default=0.1, help="weight of the MSE term beside KL (kl)"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="forward pass of the training steps, as `distill --precision` (auto: bf16 where "
        "the CPU has native bf16); the checks run in fp32",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=50, help="pairs per step (whole lists)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lists", type=int, default=0, help="use the first N lists (0: all)")
    parser.add_argument("--head-lr-scale", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--noise",
        default="",
        help="also print the teacher's logits plus Gaussian noise of these standard deviations "
        "(e.g. 0.1,0.2,0.5): how close to the teacher a student must be to keep its gain",
    )
    parser.add_argument(
        "--hidden-weight",
        type=float,
        default=0.0,
        help="also match the teacher's last [CLS] hidden state (MSE, this weight): the "
        "teacher runs in PyTorch beside the student",
    )
    parser.add_argument("--no-student", action="store_true", help="only BM25, teacher, noise")
    parser.add_argument(
        "--judge-on",
        choices=("sample", "heldout"),
        default="sample",
        help="the demo's 100-query sample, or --heldout-queries held-out queries outside it",
    )
    parser.add_argument("--heldout-queries", type=int, default=150)
    parser.add_argument("--every", type=int, default=0, help="also judge every K steps")
    return parser


def fit_settings(args: argparse.Namespace) -> Any:
    """The fit loop's settings from the lab's arguments (precision included)."""
    from bridge.training import torch_model as tm

    return tm.FitSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        warmup=args.warmup,
        head_lr_scale=args.head_lr_scale,
        threads=args.threads,
        progress=False,
        precision=args.precision,
    )


def student_loss(args: argparse.Namespace) -> Any:
    """The distill loss the arguments name, with KL's temperature and MSE weight."""
    from bridge.training.distill import distill_loss

    return distill_loss(args.loss, args.temperature, args.mse_weight)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import numpy as np

    from bridge.eval.corpus_index import temporary_index
    from bridge.eval.datasets import load_dataset
    from bridge.eval.ir_metrics import evaluate
    from bridge.ranker import Ranker
    from bridge.training import torch_model as tm
    from bridge.training.distill import list_batches, read_scores
    from bridge.training.engine import bm25_top_k, connect_engine

    data = args.shared / "data" / "homedepot"
    dataset = load_dataset(data, max_queries=100, seed=13)
    queries, all_qrels = dataset.queries, dataset.qrels
    if args.judge_on == "heldout":
        from heldout_selection import selection_queries

        from bridge.training.judgments import load_judgments

        judgments = load_judgments(data)
        picked = selection_queries(judgments, data, 0.1, 100, args.heldout_queries, 99)
        queries = {q: judgments.queries[q] for q in picked}
        all_qrels = {q: judgments.gains[q] for q in picked}
    qids = list(queries)
    client = connect_engine(args.engine)
    if args.index:
        found = bm25_top_k(
            client, args.index, ["title"], [queries[q] for q in qids], 50, progress=False
        )
    else:
        with temporary_index(client, dataset, progress=False) as index:
            found = bm25_top_k(
                client, index, ["title"], [queries[q] for q in qids], 50, progress=False
            )
    hits = {q: [i for i, _ in h] for q, h in zip(qids, found, strict=True)}
    texts = {q: [t for _, t in h] for q, h in zip(qids, found, strict=True)}
    teacher = Ranker(model_name=str(args.teacher))
    scored: dict[str, dict[str, list[float]]] = {
        "bm25": {q: [-float(i) for i in range(len(hits[q]))] for q in qids},
        "teacher": {
            q: [float(s) for s in teacher.score_pairs([(queries[q], t) for t in texts[q]])]
            for q in qids
        },
    }

    qrels = {q: all_qrels[q] for q in qids}

    def ndcg_of(scores: dict[str, list[float]], window: int) -> float:
        return round(
            evaluate(qrels, ranked(scores, hits, window), recall_depths=[10]).mean["ndcg@10"], 4
        )

    teacher_logits = {q: [_logit(p) for p in s] for q, s in scored["teacher"].items()}
    rng = np.random.default_rng(args.seed)
    for sd in [float(x) for x in args.noise.split(",") if x.strip()]:
        noisy = [
            {q: [x + float(rng.normal(0.0, sd)) for x in s] for q, s in teacher_logits.items()}
            for _ in range(5)
        ]
        row = {
            "teacher_plus_noise_sd": sd,
            **{
                f"ndcg@10@{w}": round(float(np.mean([ndcg_of(n, w) for n in noisy])), 4)
                for w in WINDOWS
            },
            "spearman_vs_teacher": round(
                float(
                    np.nanmean(
                        [
                            spearman(n[q], teacher_logits[q])
                            for n in noisy
                            for q in qids
                            if len(hits[q]) > 2
                        ]
                    )
                ),
                3,
            ),
        }
        print(json.dumps(row), flush=True)

    if args.no_student:
        print(
            json.dumps(
                {f"{name}@{w}": ndcg_of(s, w) for name, s in scored.items() for w in WINDOWS}
            )
        )
        return 0
    lists, logits = read_scores(args.scores)
    if args.lists:
        lists, logits = lists[: args.lists], logits[: args.lists]
    settings = fit_settings(args)
    tm.seed_everything(args.seed)
    tm.set_threads(args.threads)
    layers = [int(x) for x in args.layers.split(",")]
    student = tm.load_cross_encoder(args.teacher, layers=layers)
    encoder = tm.PairEncoder(args.teacher / "tokenizer.json", settings.max_length)
    groups = list(zip(lists, logits, strict=True))
    loss = student_loss(args)
    trained = student
    if args.hidden_weight:
        trained = with_hidden_targets(student, tm.load_cross_encoder(args.teacher))

        def loss(logits: Any, targets: Any, base: Any = loss) -> Any:
            return base(logits, targets) + args.hidden_weight * trained.hidden_loss

    def judge() -> dict[str, Any]:
        """The student's figures now: NDCG@10 of all, kept share of the gain, agreement."""
        student.eval()
        scored["student"] = {
            q: tm.predict_logits(student, encoder, [(queries[q], t) for t in texts[q]])
            .reshape(-1)
            .tolist()
            if texts[q]
            else []
            for q in qids
        }
        trained.train()
        ndcg = {f"{name}@{w}": ndcg_of(s, w) for name, s in scored.items() for w in WINDOWS}
        kept = {  # None where the teacher gains nothing over BM25 (no share to keep)
            f"kept@{w}": round(
                (ndcg[f"student@{w}"] - ndcg[f"bm25@{w}"])
                / (ndcg[f"teacher@{w}"] - ndcg[f"bm25@{w}"]),
                2,
            )
            if ndcg[f"teacher@{w}"] - ndcg[f"bm25@{w}"] > 1e-3
            else None
            for w in WINDOWS
        }
        agreement = [
            spearman(scored["student"][q], scored["teacher"][q]) for q in qids if len(hits[q]) > 2
        ]
        return {
            "judged_on": f"{args.judge_on} ({len(qids)} queries)",
            "ndcg@10": ndcg,
            **kept,
            "spearman_vs_teacher": round(float(np.nanmean(agreement)), 3),
        }

    def checkpoint(log: Any) -> None:
        if args.every and log.steps % args.every == 0:
            seconds = round(time.perf_counter() - started)  # training + the checks so far
            row = {"step": log.steps, "pairs": log.pairs, "seconds": seconds, **judge()}
            print(json.dumps(row), flush=True)

    if args.every:
        print(json.dumps({"step": 0, "pairs": 0, **judge()}), flush=True)
    started = time.perf_counter()
    log = tm.fit(
        trained,
        encoder,
        lambda epoch: list_batches(groups, args.batch_size, args.seed + epoch),
        loss,
        settings,
        after_step=checkpoint,
    )
    judged = judge()
    fitted = [  # on lists it learned from: can the student fit them at all?
        spearman(
            tm.predict_logits(student, encoder, [(query, p) for p in passages])
            .reshape(-1)
            .tolist(),
            teacher_list,
        )
        for (query, passages), teacher_list in groups[:40]
    ]
    print(
        json.dumps(
            {
                "settings": {
                    k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()
                },
                "lists": len(lists),
                "steps": log.steps,
                "pairs": log.pairs,
                "train_seconds": round(log.seconds),
                "precision": log.precision,
                "last_losses": [round(loss, 3) for _, loss in log.losses[-3:]],
                **judged,
                "spearman_on_training_lists": round(float(np.nanmean(fitted)), 3),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
