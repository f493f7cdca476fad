"""Create indices from mappings/ and bulk-load documents, optionally with bi-encoder vectors.

Works with an elasticsearch-py or opensearch-py client; never imports either (or the scorer):
vectors come from an `embed` callable, e.g. ``bridge.load_scorer(path).embed``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from bridge.errors import ConfigError, UpstreamError

logger = logging.getLogger(__name__)

Document = dict[str, Any]
EmbedFn = Callable[[list[str]], Any]  # list of texts -> (n, dim) array-like of floats

ENGINES = ("elasticsearch", "opensearch")
VECTOR_FIELD = "embedding"
TEXT_FIELDS = ("title", "brand", "description")
# A wheel carries mappings/ inside the package (pyproject force-include); a checkout at its root.
_PACKAGED_MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
MAPPINGS_DIR = (
    _PACKAGED_MAPPINGS
    if _PACKAGED_MAPPINGS.is_dir()
    else Path(__file__).resolve().parents[2] / "mappings"
)


def mapping_path_for(engine: str, name: str = "products") -> Path:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {ENGINES}", field="engine")
    return MAPPINGS_DIR / f"{name}.{engine}.json"


def load_mapping(
    engine: str, mapping_path: Path | str | None = None, *, vectors: bool = True
) -> dict[str, Any]:
    """The index body (settings + mappings); without `vectors`, the vector field is dropped."""
    path = Path(mapping_path) if mapping_path is not None else mapping_path_for(engine)
    try:
        body: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"mapping file not found: {path}", field="mapping_path") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", field="mapping_path") from None
    if not vectors:
        body = copy.deepcopy(body)
        body.get("mappings", {}).get("properties", {}).pop(VECTOR_FIELD, None)
        settings = body.get("settings", {})
        settings.pop("index.knn", None)
        settings.get("index", {}).pop("knn", None)
    return body


def create_index(
    client: Any,
    name: str,
    engine: str,
    mapping_path: Path | str | None = None,
    *,
    vectors: bool = True,
) -> None:
    """Create `name` from the engine's mapping file (see mappings/)."""
    body = load_mapping(engine, mapping_path, vectors=vectors)
    if engine == "elasticsearch":
        client.indices.create(
            index=name, settings=body.get("settings"), mappings=body.get("mappings")
        )
    else:
        client.indices.create(index=name, body=body)
    logger.info("created %s index %s", engine, name)


def bulk_index(
    client: Any,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    embed: EmbedFn | None = None,
    id_field: str | None = "product_uid",
    text_fields: Sequence[str] = TEXT_FIELDS,
    vector_field: str = VECTOR_FIELD,
    batch_size: int = 500,
    progress: bool = True,
    total: int | None = None,
    refresh: bool = True,
) -> int:
    """Index `docs` in batches; return how many were indexed.

    With `embed`, each document gets `vector_field` from the text of its `text_fields`. Any item
    the engine rejects raises UpstreamError naming the first failures (bulk answers 200 anyway).
    """
    if batch_size < 1:
        raise ConfigError("must be >= 1", field="batch_size")
    if total is None and isinstance(docs, Sequence):
        total = len(docs)
    bar = _progress_bar(total, f"indexing {index}", enabled=progress)
    indexed = 0
    try:
        for batch in _batches(docs, batch_size):
            if embed is not None:
                batch = _with_vectors(batch, embed, text_fields, vector_field)
            _send_bulk(client, index, batch, id_field)
            indexed += len(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    if refresh:
        client.indices.refresh(index=index)
    logger.info("indexed %d documents into %s", indexed, index)
    return indexed


def read_homedepot_products(path: Path | str, limit: int | None = None) -> list[Document]:
    """Home Depot products from `products.jsonl` (or the folder holding it), in file order."""
    location = Path(path)
    if location.is_dir():
        location = location / "products.jsonl"
    products: list[Document] = []
    try:
        with location.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if limit is not None and len(products) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{location}:{number}: invalid JSON ({exc})") from None
                if not isinstance(record, dict) or "product_uid" not in record:
                    raise ConfigError(f"{location}:{number}: expected an object with product_uid")
                record["product_uid"] = str(record["product_uid"])
                products.append(record)
    except FileNotFoundError:
        raise ConfigError(f"products file not found: {location}", field="path") from None
    return products


def document_text(doc: Mapping[str, Any], fields: Sequence[str] = TEXT_FIELDS) -> str:
    """The text a bi-encoder embeds for `doc`: its non-empty text fields joined by '. '."""
    return ". ".join(str(doc[field]) for field in fields if doc.get(field))


# -- helpers ---------------------------------------------------------------------------------------


def _batches(docs: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Document]]:
    iterator = iter(docs)
    while batch := [dict(doc) for doc in islice(iterator, size)]:
        yield batch


def _with_vectors(
    batch: list[Document], embed: EmbedFn, fields: Sequence[str], vector_field: str
) -> list[Document]:
    vectors = embed([document_text(doc, fields) for doc in batch])
    if len(vectors) != len(batch):
        raise ConfigError(f"embed returned {len(vectors)} vectors for {len(batch)} texts")
    for doc, vector in zip(batch, vectors, strict=True):
        doc[vector_field] = [float(value) for value in vector]
    return batch


def _send_bulk(client: Any, index: str, batch: list[Document], id_field: str | None) -> None:
    operations: list[dict[str, Any]] = []
    for doc in batch:
        action: dict[str, Any] = {"_index": index}
        if id_field is not None and doc.get(id_field) is not None:
            action["_id"] = str(doc[id_field])
        operations.append({"index": action})
        operations.append(doc)
    if type(client).__module__.startswith("opensearchpy"):
        response = client.bulk(body=operations)
    else:
        response = client.bulk(operations=operations)
    body = response.body if hasattr(response, "body") else response
    if body.get("errors"):
        failures = [
            f"{item.get('_id')}: {item['error'].get('type')}: {item['error'].get('reason')}"
            for entry in body.get("items", [])
            for item in entry.values()
            if isinstance(item, dict) and item.get("error")
        ]
        raise UpstreamError(
            f"bulk indexing into {index} rejected {len(failures)} of {len(batch)} documents: "
            + "; ".join(failures[:3])
        )


class _Progress(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress_bar(total: int | None, label: str, *, enabled: bool) -> _Progress | None:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the `eval` extra; indexing works without it
        return None
    bar: _Progress = tqdm(total=total, desc=label, unit="doc", leave=False)
    return bar
