"""`make demo`: see reranking lift real product search, end to end.

1. the data check, before anything else (`bridge/devtools/demo_data.py`; `make demo` runs it even
   before creating the venv);
2. an Elasticsearch node (`RERANK_BRIDGE_ES_URL`, else a local node started and stopped here);
3. the Home Depot products indexed for BM25 (no vectors yet: the side-by-side does not need them);
4. five real queries chosen for having several judged products in BM25's top 10: BM25 top-5 next
   to reranked top-5, human grades in every cell, NDCG@10 of both columns;
5. vectors from the bi-encoder (cached in `.cache/embeddings`, so only the first run pays), then
   the eval on the shared judgments (Home Depot sample, TREC-DL19) as tables naming each model.

Rerank model: `RERANK_BRIDGE_MODEL=/path`, else the trained cross-encoder in ../shared/models/,
else FlashRank's nano model (downloaded once). The bi-encoder only makes vectors.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import logging
import random
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge.devtools import demo_data
from bridge.errors import BridgeError, EvalError

logger = logging.getLogger(__name__)

ENGINE_ENV = "RERANK_BRIDGE_ES_URL"
INDEX = "rerank-bridge-demo-products"
REPO_ROOT = Path(__file__).resolve().parents[2]
EMBED_BATCH = 256
SHOWCASE_QUERIES = 5
SHOWCASE_POOL = 60
BI_ENCODER_LABEL = "all-MiniLM-L6-v2"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge.devtools.demo", description=__doc__)
    parser.add_argument("--products", type=int, help="index only the first N products")
    parser.add_argument("--queries", type=int, default=100, help="Home Depot eval queries")
    parser.add_argument("--windows", default="20,50", help="rerank windows for the eval")
    parser.add_argument("--no-vectors", action="store_true", help="skip kNN and hybrid")
    parser.add_argument("--no-msmarco", action="store_true", help="skip the TREC-DL19 eval")
    parser.add_argument(
        "--train",
        action="store_true",
        help="also train a Home Depot reranker on the demo's index, holding the eval's queries "
        "out (PyTorch: the train extra), and evaluate it beside the shared one",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "eval-out" / "demo")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="copy tables and plots into docs/results/ and the README results section",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def engine_url(console: Any) -> Iterator[str]:
    """The user's engine, or a local node that is stopped on the way out (even on error)."""
    import os

    url = os.environ.get(ENGINE_ENV)
    if url:
        console.print(f"Elasticsearch: [bold]{url}[/] (from ${ENGINE_ENV})")
        yield url
        return
    from bridge.devtools.localnode import LocalNode

    node = LocalNode("elasticsearch")
    console.print(
        "Starting a local Elasticsearch node (first run downloads it from Maven Central)…"
    )
    url = node.start()
    console.print(f"Elasticsearch: [bold]{url}[/] (local node, pid {node.pid})")
    try:
        yield url
    finally:
        node.stop()
        console.print("Local Elasticsearch node stopped.")


def cached_vectors(embed: Any, texts: list[str], model_dir: Path) -> Any:
    """Embed `texts` once per (model, texts): later runs load `.cache/embeddings/<key>.npy`."""
    import numpy as np

    from bridge.eval.progress import progress_bar

    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    path = REPO_ROOT / ".cache" / "embeddings" / f"{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)
    bar = progress_bar(len(texts), desc="embedding products", unit="doc")
    parts = []
    try:
        for start in range(0, len(texts), EMBED_BATCH):
            parts.append(np.asarray(embed(texts[start : start + EMBED_BATCH]), dtype=np.float32))
            bar.update(len(parts[-1]))
    finally:
        bar.close()
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def index_products(client: Any, products: list[dict[str, Any]]) -> None:
    """(Re)create the demo index with BM25 text only; vectors are added later, in place."""
    from bridge.devtools.indexing import bulk_index, create_index

    client.indices.delete(index=INDEX, ignore_unavailable=True)
    create_index(client, INDEX, "elasticsearch", vectors=True)  # the field exists, filled later
    bulk_index(client, INDEX, products, id_field="product_uid", text_fields=("title",))


def add_vectors(client: Any, products: list[dict[str, Any]], bi_dir: Path) -> None:
    """Embed the titles (cached in .cache/embeddings) and re-index the products with vectors."""
    from bridge.devtools.indexing import bulk_index
    from bridge.scoring import shared_scorers

    embed = shared_scorers.get(str(bi_dir)).embed
    matrix = cached_vectors(embed, [p["title"] for p in products], bi_dir)
    with_vectors = [
        {**product, "embedding": [float(x) for x in vector]}
        for product, vector in zip(products, matrix, strict=True)
    ]
    bulk_index(client, INDEX, with_vectors, id_field="product_uid", text_fields=("title",))


def showcase_queries(
    client: Any, dataset: Any, count: int = SHOWCASE_QUERIES, pool: int = SHOWCASE_POOL
) -> list[str]:
    """Queries worth looking at: BM25's top 10 holds the most judged products, of mixed grades.

    From a seeded pool of judged queries (at least 4 judged products, not all the same grade),
    the `count` whose BM25 top 10 contains the most judged products, so both columns' NDCG@10
    rest on several human grades rather than on one hit or on unjudged products.
    """
    eligible = sorted(
        qid for qid, docs in dataset.qrels.items() if len(docs) >= 4 and len(set(docs.values())) > 1
    )
    candidates = random.Random(7).sample(eligible, min(pool, len(eligible)))
    judged_in_top: list[tuple[int, int, str]] = []
    for order, qid in enumerate(candidates):
        hits = client.search(
            index=INDEX, query={"match": {"title": dataset.queries[qid]}}, size=10, source=False
        )["hits"]["hits"]
        judged = sum(1 for hit in hits if str(hit["_id"]) in dataset.qrels[qid])
        judged_in_top.append((-judged, order, qid))
    return [qid for _, _, qid in sorted(judged_in_top)[:count]]


def side_by_side(console: Any, client: Any, model: str, dataset: Any, qids: list[str]) -> None:
    """BM25 top-5 vs reranked top-5 per query, grades in each cell, NDCG@10 of both top 10s."""
    from rich.table import Table

    from bridge.eval.choice import display_name
    from bridge.eval.ir_metrics import evaluate
    from bridge.search import RerankingSearch

    searcher = RerankingSearch(client)
    name = display_name(model)
    rerank = {"window_size": 50, "model": model, "fields": ["title"], "timeout_ms": None}
    for qid in qids:
        text = dataset.queries[qid]
        query = {"match": {"title": text}}
        plain = searcher.search(index=INDEX, query=query, size=10)["hits"]["hits"]
        reranked = searcher.search(index=INDEX, query=query, size=10, rerank=rerank)["hits"]["hits"]
        grades = dataset.qrels[qid]
        ndcg = {
            label: evaluate({qid: grades}, {qid: [str(h["_id"]) for h in hits]}).mean["ndcg@10"]
            for label, hits in (("bm25", plain), ("rerank", reranked))
        }
        judged = sum(1 for h in plain if str(h["_id"]) in grades)
        table = Table(
            title=f"“{text}” — {len(grades)} judged products, {judged} of them in BM25's top 10",
            title_justify="left",
            expand=True,
        )
        table.add_column("#", justify="right", width=2)
        table.add_column(f"BM25 top-5 · NDCG@10 {ndcg['bm25']:.3f}", ratio=1)
        table.add_column(
            f"reranked by {name} (window 50) top-5 · NDCG@10 {ndcg['rerank']:.3f}", ratio=1
        )
        for rank, (left, right) in enumerate(zip(plain[:5], reranked[:5], strict=False), 1):
            table.add_row(str(rank), _cell(left, grades, "bm25"), _cell(right, grades, name))
        console.print(table)
    console.print(
        "grade: the human judgment (1 irrelevant … 3 exact match); “–” never judged for this "
        "query (counts as irrelevant in NDCG@10, computed on each column's top 10)"
    )


def results_table(report: Any) -> Any:
    """The eval report as a rich table, one row per system, each naming its model."""
    import math

    from rich.table import Table

    from bridge.eval.choice import display_name

    base = report.baseline()
    table = Table(title=f"{report.dataset}: {report.queries} judged queries", title_justify="left")
    table.add_column("system", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for column in ("top", "NDCG@10", "MRR@10", "Δ NDCG@10", "p50 ms"):
        table.add_column(column, justify="right")
    for system in report.systems:
        delta = system.mean["ndcg@10"] - base.mean["ndcg@10"] if base else math.nan
        if system.model:
            model = display_name(system.model)
        elif system.system.startswith(("knn", "hybrid")):
            model = f"{BI_ENCODER_LABEL} (vectors)"
        else:
            model = "—"
        table.add_row(
            system.system,
            model,
            str(system.window or system.depth or ""),
            f"{system.mean['ndcg@10']:.4f}",
            f"{system.mean['mrr@10']:.4f}",
            "—" if system is base or math.isnan(delta) else f"{delta:+.4f}",
            f"{system.p50_ms:.0f}",
        )
    return table


def _cell(hit: Any, grades: dict[str, int], scorer: str = "score") -> str:
    from rich.markup import escape as markup_escape

    from bridge.eval.datasets import HOMEDEPOT_GAIN_SCALE

    gain = grades.get(str(hit["_id"]))
    grade = "–" if gain is None else f"{1 + gain / HOMEDEPOT_GAIN_SCALE:.2f}"
    # Titles carry HTML entities from the source data and may contain brackets that rich would
    # read as markup: unescape the one, escape the other, for display only.
    title = markup_escape(html.unescape(str(hit["_source"].get("title", ""))))
    return f"{title}\n[dim]{markup_escape(scorer)} {hit['_score']:.3f} · grade {grade}[/]"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the local node is stopped on the way.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(_parse(argv))
    except BridgeError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    message = demo_data.problem()
    if message is not None:  # before any import of the heavy parts or any node
        raise EvalError(message)
    from elasticsearch import Elasticsearch
    from rich.console import Console

    from bridge.devtools.indexing import read_homedepot_products
    from bridge.eval.choice import bi_encoder_dir, display_name, shared_dir
    from bridge.eval.datasets import load_homedepot

    console = Console()
    data = shared_dir() / "data"
    homedepot = data / "homedepot"
    model = rerank_model()
    bi_dir = None if args.no_vectors else bi_encoder_dir()
    console.rule("rerank-bridge demo")
    console.print(f"rerank model: [bold]{display_name(model)}[/] ({model})")
    console.print(f"bi-encoder for vectors: {bi_dir or 'none (kNN and hybrid skipped)'}")
    products = read_homedepot_products(homedepot, limit=args.products)
    judged = load_homedepot(homedepot)  # every judged query, for choosing the showcase
    with engine_url(console) as url:
        client = Elasticsearch(url, request_timeout=120)
        ready = time.perf_counter()
        try:
            index_products(client, products)
            qids = showcase_queries(client, judged)
            console.rule(f"{len(qids)} real queries: BM25 vs reranked")
            side_by_side(console, client, model, judged, qids)
            console.print(
                f"[dim]first side-by-side {time.perf_counter() - ready:.0f} s after the node "
                f"was up ({time.perf_counter() - started:.0f} s since start)[/]"
            )
            if args.train:
                from bridge.training.demo_step import train_demo_model

                trained = REPO_ROOT / ".cache" / "train" / "demo-homedepot"
                args.trained = str(
                    train_demo_model(console, url, homedepot, INDEX, args.queries, trained)
                )
            reports = evaluate_all(console, client, args, model, bi_dir, products)
        finally:
            client.indices.delete(index=INDEX, ignore_unavailable=True)
            client.close()
    console.rule("results")
    for report, files in reports:
        console.print(results_table(report))
        for name, path in files.items():
            console.print(f"  {name}: {path}")
    if args.update_docs:
        from bridge.eval.docs import update_docs

        for path in update_docs([r for r, _ in reports], [f for _, f in reports], REPO_ROOT):
            console.print(f"updated {path}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


def rerank_model() -> str:
    """A cross-encoder: `RERANK_BRIDGE_MODEL`, the shared trained one, else the default name."""
    import os

    from bridge.config import DEFAULT_MODEL
    from bridge.eval.choice import shared_models

    override = os.environ.get("RERANK_BRIDGE_MODEL")
    if override:
        return override
    found = shared_models()
    return str(found[0]) if found else DEFAULT_MODEL


def evaluate_all(
    console: Any,
    client: Any,
    args: argparse.Namespace,
    model: str,
    bi_dir: Path | None,
    products: list[dict[str, Any]],
) -> list[tuple[Any, dict[str, Path]]]:
    """Vectors (cached) into the index, then the Home Depot and TREC-DL19 evals."""
    from bridge.eval.api import eval_dataset, write_outputs
    from bridge.eval.choice import shared_dir
    from bridge.eval.datasets import load_homedepot
    from bridge.eval.systems import EvalRunner, EvalSettings

    homedepot = shared_dir() / "data" / "homedepot"
    msmarco = shared_dir() / "data" / "msmarco-dl19"
    embed = None
    if bi_dir is not None:
        from bridge.scoring import shared_scorers

        console.rule("vectors for kNN and hybrid (cached in .cache/embeddings after the first run)")
        add_vectors(client, products, bi_dir)
        embed = shared_scorers.get(str(bi_dir)).embed
    dataset = load_homedepot(homedepot, max_queries=args.queries)
    console.rule(f"eval: Home Depot ({len(dataset.queries)} queries)")
    settings = EvalSettings(
        models=[model, *([args.trained] if getattr(args, "trained", None) else [])],
        windows=[int(w) for w in args.windows.split(",")],
        text_fields=("title",),
        vector_field="embedding" if embed is not None else None,
    )
    runner = EvalRunner(client, INDEX, settings, embed=embed)
    report = runner.run(dataset.queries, dataset.qrels, dataset="homedepot", notes=dataset.notes)
    reports = [(report, write_outputs(report, args.out / "homedepot"))]
    if not args.no_msmarco and (msmarco / "corpus.jsonl").is_file():
        console.rule(f"eval: TREC-DL19 passages (43 judged queries), BM25 vs {Path(model).name}")
        ms = eval_dataset(
            client, msmarco, EvalSettings(models=[model], windows=[50]), args.out / "msmarco-dl19"
        )
        reports.append((ms.report, ms.files))
    return reports


if __name__ == "__main__":
    sys.exit(main())
