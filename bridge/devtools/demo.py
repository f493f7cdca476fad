"""`make demo`: see reranking lift real product search, end to end, in a few minutes.

1. an Elasticsearch node (`RERANK_BRIDGE_ES_URL`, else a local node started and stopped here);
2. the Home Depot products indexed with bi-encoder vectors (progress bars; vectors are cached in
   `.cache/embeddings` so a second run skips the embedding);
3. five real queries side by side: BM25 top-5 vs reranked top-5 with scores and human grades;
4. the eval on the shared judgments (Home Depot sample, TREC-DL19), figures and plot paths.

Model (offline): `RERANK_BRIDGE_MODEL=/path`, else ../shared/models/*, else the bi-encoder;
with network access and none of those, the FlashRank nano model.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import logging
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError, EvalError

logger = logging.getLogger(__name__)

ENGINE_ENV = "RERANK_BRIDGE_ES_URL"
INDEX = "rerank-bridge-demo-products"
REPO_ROOT = Path(__file__).resolve().parents[2]
EMBED_BATCH = 256


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge.devtools.demo", description=__doc__)
    parser.add_argument("--products", type=int, help="index only the first N products")
    parser.add_argument("--queries", type=int, default=100, help="Home Depot eval queries")
    parser.add_argument("--windows", default="20,50", help="rerank windows for the eval")
    parser.add_argument("--no-vectors", action="store_true", help="skip kNN and hybrid")
    parser.add_argument("--no-msmarco", action="store_true", help="skip the TREC-DL19 eval")
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


def index_products(client: Any, homedepot: Path, *, limit: int | None, bi_dir: Path | None) -> bool:
    """(Re)create the demo index; returns whether it carries vectors."""
    from bridge.devtools.indexing import bulk_index, create_index, read_homedepot_products
    from bridge.scoring import shared_scorers

    products = read_homedepot_products(homedepot, limit=limit)
    vectors = bi_dir is not None
    if bi_dir is not None:
        embed = shared_scorers.get(str(bi_dir)).embed
        matrix = cached_vectors(embed, [p["title"] for p in products], bi_dir)
        for product, vector in zip(products, matrix, strict=True):
            product["embedding"] = [float(x) for x in vector]
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    create_index(client, INDEX, "elasticsearch", vectors=vectors)
    bulk_index(client, INDEX, products, id_field="product_uid", text_fields=("title",))
    return vectors


def side_by_side(console: Any, client: Any, model: str, dataset: Any, count: int = 5) -> None:
    """BM25 top-5 vs reranked top-5 for `count` real judged queries, with human grades."""
    from rich.table import Table

    from bridge.eval.choice import display_name
    from bridge.search import RerankingSearch

    searcher = RerankingSearch(client)
    grades = {qid: dict(d) for qid, d in dataset.qrels.items()}
    chosen = random.Random(7).sample(sorted(dataset.queries), count)
    for qid in chosen:
        text = dataset.queries[qid]
        query = {"match": {"title": text}}
        plain = searcher.search(index=INDEX, query=query, size=5)
        reranked = searcher.search(
            index=INDEX,
            query=query,
            size=5,
            rerank={"window_size": 50, "model": model, "fields": ["title"], "timeout_ms": None},
        )
        table = Table(title=f"“{text}”", title_justify="left", expand=True)
        table.add_column("#", justify="right", width=2)
        table.add_column("BM25 top-5", ratio=1)
        table.add_column(f"reranked top-5 ({display_name(model)}, window 50)", ratio=1)
        rows = zip(plain["hits"]["hits"], reranked["hits"]["hits"], strict=False)
        for rank, (left, right) in enumerate(rows, start=1):
            table.add_row(
                str(rank),
                _cell(left, grades[qid]),
                _cell(right, grades[qid]),
            )
        console.print(table)
    console.print(
        "grade: the human judgment (1 irrelevant … 3 exact match); “–” never judged for this query"
    )


def _cell(hit: Any, grades: dict[str, int]) -> str:
    from rich.markup import escape as markup_escape

    from bridge.eval.datasets import HOMEDEPOT_GAIN_SCALE

    gain = grades.get(str(hit["_id"]))
    grade = "–" if gain is None else f"{1 + gain / HOMEDEPOT_GAIN_SCALE:.2f}"
    # Titles carry HTML entities from the source data and may contain brackets that rich would
    # read as markup: unescape the one, escape the other, for display only.
    title = markup_escape(html.unescape(str(hit["_source"].get("title", ""))))
    return f"{title}\n[dim]score {hit['_score']:.3f} · grade {grade}[/]"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(_parse(argv))
    except BridgeError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    from elasticsearch import Elasticsearch
    from rich.console import Console

    from bridge.eval.api import eval_dataset, write_outputs
    from bridge.eval.choice import bi_encoder_dir, default_models, display_name, shared_dir
    from bridge.eval.datasets import load_homedepot
    from bridge.eval.report import markdown_table
    from bridge.eval.systems import EvalRunner, EvalSettings

    started = time.perf_counter()
    console = Console()
    data = shared_dir() / "data"
    homedepot, msmarco = data / "homedepot", data / "msmarco-dl19"
    if not (homedepot / "products.jsonl").is_file():
        raise EvalError(
            f"the demo needs the shared Home Depot data at {homedepot} "
            "(set RERANK_BRIDGE_SHARED to the folder holding data/ and models/)"
        )
    model = default_models()[0]
    bi_dir = None if args.no_vectors else bi_encoder_dir()
    windows = [int(w) for w in args.windows.split(",")]
    console.rule("rerank-bridge demo")
    console.print(f"rerank model: [bold]{display_name(model)}[/] ({model})")
    console.print(f"bi-encoder for vectors: {bi_dir or 'none (kNN and hybrid skipped)'}")
    reports = []
    with engine_url(console) as url:
        client = Elasticsearch(url, request_timeout=120)
        try:
            vectors = index_products(client, homedepot, limit=args.products, bi_dir=bi_dir)
            dataset = load_homedepot(homedepot, max_queries=args.queries)
            console.rule("five real queries")
            side_by_side(console, client, model, dataset)
            console.rule(f"eval: Home Depot ({len(dataset.queries)} queries)")
            settings = EvalSettings(
                models=[model],
                windows=windows,
                text_fields=("title",),
                vector_field="embedding" if vectors else None,
            )
            embed = None
            if vectors and bi_dir is not None:
                from bridge.scoring import shared_scorers

                embed = shared_scorers.get(str(bi_dir)).embed
            runner = EvalRunner(client, INDEX, settings, embed=embed)
            hd_report = runner.run(
                dataset.queries, dataset.qrels, dataset="homedepot", notes=dataset.notes
            )
            reports.append((hd_report, write_outputs(hd_report, args.out / "homedepot")))
            if not args.no_msmarco and (msmarco / "corpus.jsonl").is_file():
                console.rule("eval: TREC-DL19 passages (43 judged queries)")
                ms_models = [str(p) for p in [bi_encoder_dir()] if p is not None] or [model]
                ms = eval_dataset(
                    client,
                    msmarco,
                    EvalSettings(models=ms_models, windows=[50]),
                    args.out / "msmarco-dl19",
                )
                reports.append((ms.report, ms.files))
        finally:
            client.indices.delete(index=INDEX, ignore_unavailable=True)
            client.close()
    console.rule("results")
    for report, files in reports:
        print(markdown_table(report))  # plain print: a markdown table must not be re-wrapped
        for name, path in files.items():
            print(f"  {name}: {path}")
    if args.update_docs:
        from bridge.eval.docs import update_docs

        for path in update_docs([r for r, _ in reports], [f for _, f in reports], REPO_ROOT):
            console.print(f"updated {path}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
