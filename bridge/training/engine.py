"""The engine side of training: an index of the passages, and each query's BM25 top-k from it.

``passage_index`` yields an existing index (``--index``) or a temporary one holding the judged
collection (deleted on the way out, also on Ctrl-C). ``bm25_top_k`` asks the engine with
``_msearch`` in chunks, so thousands of training queries cost seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bridge.errors import TrainingError, UpstreamError
from bridge.eval.datasets import Dataset
from bridge.eval.progress import progress_bar
from bridge.training.judgments import Judgments

Hit = tuple[str, str]  # (document id, passage text)
MSEARCH_CHUNK = 64


@contextmanager
def passage_index(
    client: Any, judgments: Judgments, index: str | None, *, progress: bool = True
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(index name, text fields): ``index`` as it is, or a temporary index of the passages."""
    from bridge.eval.api import index_fields
    from bridge.eval.corpus_index import temporary_index

    if index is not None:
        try:
            fields, _ = index_fields(client, index)
        except Exception as exc:  # EvalError (no such index) or the client's transport errors
            raise TrainingError(f"--index {index}: {exc}") from None
        wanted = tuple(f for f in judgments.text_fields if f in fields) or tuple(fields)
        if not wanted:
            raise TrainingError(f"--index {index} has no text field")
        yield index, wanted
        return
    field = judgments.text_fields[0]
    dataset = Dataset(
        name=judgments.name,
        corpus={pid: {field: text} for pid, text in judgments.passages.items()},
        queries={},
        qrels={},
        text_fields=(field,),
    )
    with temporary_index(client, dataset, progress=progress, prefix="rerank-bridge-train") as name:
        yield name, (field,)


def bm25_top_k(
    client: Any,
    index: str,
    fields: Sequence[str],
    texts: Sequence[str],
    k: int,
    *,
    progress: bool = True,
    desc: str = "BM25 top-k",
) -> list[list[Hit]]:
    """For each query text, the engine's BM25 top-``k`` as (id, passage text) pairs."""
    opensearch = type(client).__module__.startswith("opensearchpy")
    results: list[list[Hit]] = []
    bar = progress_bar(len(texts), desc=desc, unit="query", enabled=progress)
    try:
        for start in range(0, len(texts), MSEARCH_CHUNK):
            chunk = texts[start : start + MSEARCH_CHUNK]
            body: list[dict[str, Any]] = []
            for text in chunk:
                body.append({"index": index})
                body.append(
                    {
                        "query": {"multi_match": {"query": text, "fields": list(fields)}},
                        "size": k,
                        "_source": list(fields),
                    }
                )
            try:
                answer = client.msearch(body=body) if opensearch else client.msearch(searches=body)
            except Exception as exc:  # transport or API error: one line, not a traceback
                raise UpstreamError(f"BM25 search on {index} failed: {exc}") from None
            for response in answer["responses"]:
                if "error" in response:
                    raise UpstreamError(f"BM25 search on {index} failed: {response['error']}")
                results.append([_hit(h, fields) for h in response["hits"]["hits"]])
            bar.update(len(chunk))
    finally:
        bar.close()
    return results


def _hit(hit: dict[str, Any], fields: Sequence[str]) -> Hit:
    source = hit.get("_source") or {}
    parts = [str(source[f]) for f in fields if source.get(f)]
    return str(hit["_id"]), "\n".join(parts)


def connect_engine(url: str) -> Any:
    from bridge.eval.engine import connect

    client, _ = connect(url)
    return client


def require_engine(url: str | None, what: str) -> str:
    if not url:
        raise TrainingError(f"{what} needs --engine URL (or set RERANK_BRIDGE_ES_URL)")
    return url
