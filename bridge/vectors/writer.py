"""Write a bi-encoder's vectors of one text field into an existing index (index-time work), so a
``vector_field`` phase reads them with the hits instead of embedding every hit per query.

``write_vectors`` adds the vector field to the mapping (``dense_vector`` on Elasticsearch,
``knn_vector`` on OpenSearch), records the model's fingerprint in the mapping's ``_meta``, then
scrolls through the index and sends the vectors as bulk partial updates, batch by batch.
Works through ``EngineHttp`` (stdlib HTTP): no engine client needed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bridge.config import RerankConfig
from bridge.connect.engine_http import EngineHttp, checked, engine_kind
from bridge.errors import ConfigError, UpstreamError
from bridge.eval.progress import progress_bar
from bridge.pipeline.texts import passage_texts
from bridge.vectors.fingerprint import META_KEY, VectorsMeta

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], Any]  # texts -> (n, dims) array-like
VECTOR_TYPES = ("dense_vector", "knn_vector")
SCROLL = "5m"


@dataclass(frozen=True)
class WriteReport:
    """What ``write_vectors`` did."""

    index: str
    field: str
    into: str
    engine: str
    dims: int
    total: int
    embedded: int
    skipped: int  # documents without text in ``field`` (no vector written)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def write_vectors(
    http: EngineHttp,
    index: str,
    *,
    field: str,
    into: str,
    embed: Embed,
    meta: VectorsMeta,
    batch_size: int = 256,
    progress: bool = False,
) -> WriteReport:
    """Embed ``field`` of every document of ``index`` and store the vectors in ``into``.

    A document's text is the passage a phase with ``"fields": [field]`` builds for its hit
    (``passage_texts``: dot paths, arrays joined with ``", "``), so its stored vector is the one
    that phase would compute; documents whose text is empty get no vector. ``progress``: a
    progress bar on stderr."""
    if batch_size < 1:
        raise ConfigError("must be >= 1", field="--batch-size")
    if not into or "." in into or into.startswith("_"):
        raise ConfigError(
            f"{into!r}: give a top-level field name (no dots, not starting with _)", field="--into"
        )
    if into == field:
        raise ConfigError("must differ from --field (the text it embeds)", field="--into")
    began = time.perf_counter()
    engine = engine_kind(http)
    prepare_field(http, index, into, meta, engine)
    total = _count(http, index)
    # the passage a phase with "fields": [field] embeds when a hit has no stored vector
    passages = RerankConfig(fields=(field,))
    embedded = skipped = 0
    bar = progress_bar(total, desc=f"embedding {index}.{field}", unit="doc", enabled=progress)
    try:
        for hits in _scroll(http, index, field, batch_size):
            texts: list[str] = []
            targets: list[Mapping[str, Any]] = []
            for hit, text in zip(hits, passage_texts(hits, passages).texts, strict=True):
                if text:
                    texts.append(text)
                    targets.append(hit)
                else:
                    skipped += 1
            if texts:
                vectors = embed(texts)
                _send_updates(http, index, into, targets, vectors, meta.dims)
                embedded += len(texts)
            bar.update(len(hits))
    finally:
        bar.close()
    checked(http.call("POST", f"/{_path(index)}/_refresh"), f"refreshing {index}")
    seconds = round(time.perf_counter() - began, 1)
    logger.info("stored %d vectors in %s.%s (%d skipped)", embedded, index, into, skipped)
    return WriteReport(index, field, into, engine, meta.dims, total, embedded, skipped, seconds)


def vector_mapping(engine: str, dims: int, *, knn_index: bool = True) -> dict[str, Any]:
    """The mapping of a cosine vector field of ``dims`` floats on ``engine``."""
    if engine == "opensearch":
        mapping: dict[str, Any] = {"type": "knn_vector", "dimension": dims}
        if knn_index:  # an HNSW graph needs index.knn: true (a static index setting)
            # lucene, not the k-NN default faiss: faiss is a native library, and an OpenSearch
            # 3.5 node that could not load it (the integ-test zip on our dev machine) exited on
            # the first write to the field
            mapping["method"] = {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}
        return mapping
    return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}


def prepare_field(http: EngineHttp, index: str, into: str, meta: VectorsMeta, engine: str) -> None:
    """Map ``into`` (unless it is already a vector field of ``meta.dims``) and record ``meta``
    in each index's ``_meta`` (other ``_meta`` keys kept)."""
    answer = http.call("GET", f"/{_path(index)}/_mapping")
    if answer.status == 404:
        raise ConfigError(f"index {index!r} not found", field="--index")
    mappings = checked(answer, f"reading the mapping of {index}")
    if not isinstance(mappings, Mapping) or not mappings:
        raise ConfigError(f"index {index!r} not found", field="--index")
    for name, found in mappings.items():
        mapping = found.get("mappings", {}) if isinstance(found, Mapping) else {}
        existing = (mapping.get("properties") or {}).get(into)
        body: dict[str, Any] = {}
        if existing is None:
            knn = engine == "opensearch" and _knn_enabled(http, name)
            body["properties"] = {into: vector_mapping(engine, meta.dims, knn_index=knn)}
        else:
            _check_existing(existing, into, meta.dims, name)
        current = dict(mapping.get("_meta") or {})
        entries = dict(current.get(META_KEY) or {})
        entries[into] = meta.to_dict()
        body["_meta"] = {**current, META_KEY: entries}
        checked(http.call("PUT", f"/{_path(name)}/_mapping", body), f"mapping {name}.{into}")


def _check_existing(existing: Any, into: str, dims: int, index: str) -> None:
    found = existing if isinstance(existing, Mapping) else {}
    kind, size = found.get("type"), found.get("dims", found.get("dimension"))
    if kind not in VECTOR_TYPES:
        raise ConfigError(f"{index}.{into} is mapped as {kind!r}, not a vector", field="--into")
    if size is not None and int(size) != dims:
        raise ConfigError(
            f"{index}.{into} holds {size}-dimensional vectors; this model makes {dims}",
            field="--into",
        )


def _knn_enabled(http: EngineHttp, index: str) -> bool:
    settings = checked(http.call("GET", f"/{_path(index)}/_settings"), f"settings of {index}")
    found = (settings.get(index) or {}).get("settings", {}) if isinstance(settings, Mapping) else {}
    knn = (found.get("index") or {}).get("knn", found.get("index.knn"))
    return str(knn).lower() == "true"


def _count(http: EngineHttp, index: str) -> int:
    body = checked(http.call("GET", f"/{_path(index)}/_count"), f"counting {index}")
    return int(body.get("count", 0)) if isinstance(body, Mapping) else 0


def _scroll(
    http: EngineHttp, index: str, field: str, size: int
) -> Iterator[list[Mapping[str, Any]]]:
    request = {"size": size, "sort": ["_doc"], "_source": [field]}
    body = checked(
        http.call("POST", f"/{_path(index)}/_search?scroll={SCROLL}", request), f"reading {index}"
    )
    scroll_id = body.get("_scroll_id")
    try:
        while True:
            hits = body.get("hits", {}).get("hits", [])
            if not hits:
                return
            yield hits
            body = checked(
                http.call("POST", "/_search/scroll", {"scroll": SCROLL, "scroll_id": scroll_id}),
                f"reading {index}",
            )
            scroll_id = body.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            http.call("DELETE", "/_search/scroll", {"scroll_id": [scroll_id]})


def _send_updates(
    http: EngineHttp,
    index: str,
    into: str,
    hits: Sequence[Mapping[str, Any]],
    vectors: Any,
    dims: int,
) -> None:
    if len(vectors) != len(hits):
        raise UpstreamError(f"the model returned {len(vectors)} vectors for {len(hits)} texts")
    lines: list[Any] = []
    for hit, vector in zip(hits, vectors, strict=True):
        values = [round(float(x), 8) for x in vector]
        if len(values) != dims or not all(math.isfinite(x) for x in values):
            raise UpstreamError(f"the model returned an unusable vector for {hit.get('_id')!r}")
        action: dict[str, Any] = {"_index": hit.get("_index", index), "_id": hit["_id"]}
        if hit.get("_routing") is not None:
            action["routing"] = hit["_routing"]
        lines.append({"update": action})
        lines.append({"doc": {into: values}})
    body = checked(http.call_ndjson("/_bulk", lines), f"bulk updates of {index}")
    if isinstance(body, Mapping) and body.get("errors"):
        failures = [
            f"{item.get('_id')}: {item['error'].get('type')}: {item['error'].get('reason')}"
            for entry in body.get("items", [])
            for item in entry.values()
            if isinstance(item, Mapping) and isinstance(item.get("error"), Mapping)
        ]
        raise UpstreamError(
            f"{len(failures)} of {len(hits)} vector updates in {index} were rejected: "
            + "; ".join(failures[:3])
        )


def _path(index: str) -> str:
    return quote(index, safe=",*")


__all__ = [
    "WriteReport",
    "prepare_field",
    "vector_mapping",
    "write_vectors",
]
