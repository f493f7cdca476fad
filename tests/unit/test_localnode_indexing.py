"""bridge.devtools.indexing without an engine: mappings, products reader, bulk bodies, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.devtools.indexing import (
    bulk_index,
    document_text,
    load_mapping,
    mapping_path_for,
    read_homedepot_products,
)
from bridge.errors import ConfigError, UpstreamError


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_mapping_files_use_the_standard_analyzer(engine: str) -> None:
    properties = load_mapping(engine)["mappings"]["properties"]
    assert properties["title"]["analyzer"] == "standard"


def test_elasticsearch_mapping_has_a_384_dim_cosine_vector() -> None:
    vector = load_mapping("elasticsearch")["mappings"]["properties"]["embedding"]
    assert (vector["dims"], vector["similarity"]) == (384, "cosine")


def test_opensearch_mapping_uses_the_lucene_knn_engine() -> None:
    vector = load_mapping("opensearch")["mappings"]["properties"]["embedding"]
    assert (vector["dimension"], vector["method"]["engine"]) == (384, "lucene")


def test_mapping_without_vectors_drops_the_vector_field_and_knn_setting() -> None:
    body = load_mapping("opensearch", vectors=False)
    assert "embedding" not in body["mappings"]["properties"]
    assert "index.knn" not in body["settings"]


def test_mapping_for_an_unknown_engine_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"\[engine\]"):
        mapping_path_for("solr")


def write_products(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_read_products_honours_the_limit(tmp_path: Path) -> None:
    rows = [{"product_uid": i, "title": f"t{i}"} for i in range(5)]
    products = read_homedepot_products(write_products(tmp_path / "products.jsonl", rows), 3)
    assert [p["product_uid"] for p in products] == ["0", "1", "2"]


def test_read_products_accepts_the_folder(tmp_path: Path) -> None:
    write_products(tmp_path / "products.jsonl", [{"product_uid": "9", "title": "drill"}])
    assert read_homedepot_products(tmp_path)[0]["title"] == "drill"


def test_read_products_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "products.jsonl"
    path.write_text('{"product_uid": "1", "title": "a"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"products\.jsonl:2"):
        read_homedepot_products(path)


def test_document_text_joins_present_fields() -> None:
    assert document_text({"title": "Drill", "brand": "", "description": "18V"}) == "Drill. 18V"


class RejectingClient:
    """Fault injection: an engine answering bulk with per-item errors (HTTP 200, errors=true)."""

    def __init__(self) -> None:
        self.indices = self

    def bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "errors": True,
            "items": [
                {"index": {"_id": op["index"].get("_id"), "error": {"type": "bad", "reason": "no"}}}
                for op in operations[::2]
            ],
        }

    def refresh(self, index: str) -> None:
        raise AssertionError("must not refresh after a failed bulk")


def test_bulk_index_raises_on_item_errors() -> None:
    docs = [{"product_uid": "1", "title": "a"}, {"product_uid": "2", "title": "b"}]
    with pytest.raises(UpstreamError, match="rejected 2 of 2"):
        bulk_index(RejectingClient(), "idx", docs, progress=False)
