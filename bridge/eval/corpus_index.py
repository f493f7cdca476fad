"""Put a dataset's corpus into a temporary index (optionally with bi-encoder vectors).

`temporary_index` deletes the index on the way out, also when the eval fails or is interrupted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bridge.errors import BridgeError, EvalError, UpstreamError
from bridge.eval.datasets import Dataset

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], Any]
VECTOR_FIELD = "embedding"
ID_FIELD = "doc_id"


def index_mapping(text_fields: Sequence[str], dims: int | None) -> dict[str, Any]:
    # `standard` analyzer: the integ-test zips lack the `english` analyzer (analysis-common).
    properties: dict[str, Any] = {f: {"type": "text", "analyzer": "standard"} for f in text_fields}
    properties[ID_FIELD] = {"type": "keyword"}
    if dims is not None:
        properties[VECTOR_FIELD] = {
            "type": "dense_vector",
            "dims": dims,
            "index": True,
            "similarity": "cosine",
        }
    return {"properties": properties}


def load_corpus(
    client: Any,
    index: str,
    dataset: Dataset,
    *,
    embed: Embed | None = None,
    progress: bool = True,
) -> None:
    """Create `index` and bulk-load the corpus; with `embed`, each doc gets a vector too."""
    from bridge.devtools.indexing import bulk_index

    opensearch = type(client).__module__.startswith("opensearchpy")
    if embed is not None and opensearch:
        raise EvalError("kNN vectors in the eval are supported on Elasticsearch only")
    dims = int(embed(["dimension probe"]).shape[1]) if embed is not None else None
    body = {
        "mappings": index_mapping(dataset.text_fields, dims),
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    }
    if opensearch:
        client.indices.create(index=index, body=body)
    else:
        client.indices.create(index=index, **body)
    docs = ({ID_FIELD: doc_id, **fields} for doc_id, fields in dataset.corpus.items())
    bulk_index(
        client,
        index,
        docs,
        embed=embed,
        id_field=ID_FIELD,
        text_fields=dataset.text_fields,
        vector_field=VECTOR_FIELD,
        progress=progress,
        total=len(dataset.corpus),
    )


@contextmanager
def temporary_index(
    client: Any,
    dataset: Dataset,
    *,
    embed: Embed | None = None,
    progress: bool = True,
    prefix: str = "rerank-bridge-eval",
) -> Iterator[str]:
    """Yield the name of a fresh index holding `dataset`; the index is deleted afterwards."""
    name = f"{prefix}-{_slug(dataset.name)}-{uuid.uuid4().hex[:8]}"
    try:
        try:
            load_corpus(client, name, dataset, embed=embed, progress=progress)
        except BridgeError:
            raise
        except Exception as exc:  # the client's transport/API errors: one line, not a traceback
            raise UpstreamError(f"indexing {dataset.name} into {name} failed: {exc}") from exc
        yield name
    finally:
        try:
            client.indices.delete(index=name, ignore_unavailable=True)
        except Exception as exc:  # never mask the eval's own error
            logger.warning("could not delete temporary index %s: %s", name, exc)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "dataset"
