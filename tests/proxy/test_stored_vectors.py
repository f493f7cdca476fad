"""Stored vectors on real Elasticsearch and OpenSearch nodes: ``rerank-bridge embed`` writes a
bi-encoder's vectors (and its fingerprint in ``_meta``), and a phase with ``vector_field`` scores
from them through every door (sync and async wrappers, proxy ``_search`` and ``_msearch``),
giving the scores embedding the same titles gives; vectors of another model or cut at another
``max_length`` (per ``_meta``), of another dimension or missing are embedded instead, and
``explain`` says how many were which.

The bi-encoder is the real all-MiniLM-L6-v2 ONNX model; ``Counting`` wraps it only to count the
texts the phase embeds (the proof that stored vectors were read, not recomputed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from opensearchpy import AsyncOpenSearch, OpenSearch

from bridge.cli import main as cli
from bridge.models.resolver import resolve_model
from bridge.scoring import load_scorer
from bridge.search import AsyncRerankingSearch, RerankingSearch
from bridge.vectors import META_KEY, model_fingerprint
from tests.proxy.conftest import StartProxy
from tests.proxy.test_rerank_routes import QUERY, TITLES

pytestmark = pytest.mark.integration

BODY = {"query": QUERY, "size": 5}
FIELD = "title_vector"


class Counting:
    """The real bi-encoder, counting the texts it is asked to embed."""

    def __init__(self, real: Any, embedded: list[str]) -> None:
        self.real = real
        self.max_length = real.max_length
        self.cache = None
        self.embedded = embedded  # shared by the scorers of every max_length

    def embed(self, texts: Sequence[str]) -> Any:
        self.embedded.extend(texts)
        return self.real.embed(texts)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return list(self.real.score(query, passages))


class Models:
    """Counting bi-encoders, one per max_length (``None``: the model's default, ``bi``), for the
    wrappers (``get``) and the proxy's pool (``__call__``)."""

    def __init__(self, bi: Path) -> None:
        self.path = str(bi)
        self.embedded: list[str] = []
        self.bi = Counting(load_scorer(bi, embedding_cache_bytes=0), self.embedded)
        self.by_length: dict[int | None, Counting] = {None: self.bi}

    def get(self, model: str, *, max_length: int | None = None) -> Any:
        if max_length not in self.by_length:
            real = load_scorer(self.path, max_length=max_length, embedding_cache_bytes=0)
            self.by_length[max_length] = Counting(real, self.embedded)
        return self.by_length[max_length]

    def __call__(self, model: str, max_length: int | None) -> Any:
        return self.get(model, max_length=max_length)


@pytest.fixture(params=["elasticsearch", "opensearch"])
def engine(request: pytest.FixtureRequest) -> tuple[str, str]:
    fixture = "es_upstream" if request.param == "elasticsearch" else "os_upstream"
    return request.param, str(request.getfixturevalue(fixture))


def make_index(
    url: str, *, dynamic_vectors: list[float] | None = None, titles: Sequence[str] = TITLES
) -> str:
    """``titles`` in a new index; with ``dynamic_vectors`` each doc also gets that list in FIELD."""
    index = f"stored-vectors-{uuid.uuid4().hex[:8]}"
    mapping = {"mappings": {"properties": {"title": {"type": "text"}}}}
    assert httpx.put(f"{url}/{index}", json=mapping).status_code == 200
    lines = []
    for i, title in enumerate(titles):
        doc: dict[str, Any] = {"title": title}
        if dynamic_vectors is not None:
            doc[FIELD] = dynamic_vectors
        lines += [json.dumps({"index": {"_id": str(i)}}), json.dumps(doc)]
    bulk = httpx.post(
        f"{url}/{index}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not bulk.json()["errors"]
    return index


@pytest.fixture
def embedded_index(engine: tuple[str, str], bi_encoder_dir: Path) -> Iterator[str]:
    """An index whose titles' vectors ``rerank-bridge embed`` wrote."""
    _, url = engine
    index = make_index(url)
    argv = ["embed", "--engine", url, "--index", index, "--model", str(bi_encoder_dir), "--quiet"]
    assert cli(argv) == 0
    yield index
    httpx.delete(f"{url}/{index}")


def section(models: Models, vector_field: str | None = FIELD) -> dict[str, Any]:
    phase: dict[str, Any] = {"model": models.path, "window_size": 5}
    if vector_field is not None:
        phase["vector_field"] = vector_field
    return {"phases": [phase], "fields": ["title"], "explain": True, "timeout_ms": None}


def search_sync(
    engine: tuple[str, str], index: str, models: Models, rerank: Any, body: Any = BODY
) -> Any:
    kind, url = engine
    client = Elasticsearch(url) if kind == "elasticsearch" else OpenSearch(url)
    with client, RerankingSearch(client, scorers=models) as door:
        answer = door.search(index=index, body=body, rerank=rerank)
    return getattr(answer, "body", answer)


def through_doors(
    engine: tuple[str, str],
    index: str,
    models: Models,
    start_proxy: StartProxy,
    rerank: Any,
    proxy_rerank: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The same search through every door: door name -> (answer, texts the door embedded);
    ``proxy_rerank``: the proxy's configured ``rerank`` defaults (its fixed max_length)."""
    kind, url = engine
    found: dict[str, Any] = {}
    models.bi.embedded.clear()
    found["sync"] = (search_sync(engine, index, models, rerank), list(models.bi.embedded))

    async def through_async() -> Any:
        client = AsyncElasticsearch(url) if kind == "elasticsearch" else AsyncOpenSearch(url)
        async with client:
            door = AsyncRerankingSearch(client, scorers=models)
            answer = await door.search(index=index, body=BODY, rerank=rerank)
            await door.close()
            return getattr(answer, "body", answer)

    models.bi.embedded.clear()
    found["async"] = (asyncio.run(through_async()), list(models.bi.embedded))
    proxy = start_proxy(
        url,
        loader=models,
        scorer={"allowed_models": [models.path, "all-MiniLM-L6-v2"]},
        **({"rerank": proxy_rerank} if proxy_rerank else {}),
    )
    models.bi.embedded.clear()
    search = httpx.post(f"{proxy.url}/{index}/_search", json={**BODY, "rerank": rerank}, timeout=60)
    found["proxy _search"] = (search.json(), list(models.bi.embedded))
    models.bi.embedded.clear()
    lines = [{"index": index}, {**BODY, "rerank": rerank}]
    multi = httpx.post(
        f"{proxy.url}/_msearch",
        content="\n".join(json.dumps(line) for line in lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    ).json()
    assert "responses" in multi, multi
    found["proxy _msearch"] = (multi["responses"][0], list(models.bi.embedded))
    return found


def model_scores(answer: dict[str, Any]) -> dict[str, float]:
    return {h["_id"]: h["_rerank"]["model_score"] for h in answer["hits"]["hits"]}


def vectors_report(answer: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = answer["rerank"]["phases"][0]["vectors"]
    return report


@pytest.fixture
def models(bi_encoder_dir: Path) -> Models:
    return Models(bi_encoder_dir)


def test_embed_writes_the_models_vectors_and_fingerprint(
    engine: tuple[str, str], embedded_index: str, bi_encoder_dir: Path
) -> None:
    kind, url = engine
    mapping = httpx.get(f"{url}/{embedded_index}/_mapping").json()[embedded_index]["mappings"]
    vector_type = {"elasticsearch": "dense_vector", "opensearch": "knn_vector"}[kind]
    assert mapping["properties"][FIELD]["type"] == vector_type
    meta = mapping["_meta"][META_KEY][FIELD]
    assert meta["fingerprint"] == model_fingerprint(resolve_model(str(bi_encoder_dir)))
    assert (meta["dims"], meta["from_field"], meta["model"]) == (384, "title", "all-MiniLM-L6-v2")
    body = {"size": 100, "fields": [FIELD], "_source": ["title"]}
    hits = httpx.post(f"{url}/{embedded_index}/_search", json=body).json()["hits"]["hits"]
    assert len(hits) == len(TITLES)
    stored = np.array([h["fields"][FIELD] for h in hits], dtype=np.float32)
    fresh = load_scorer(bi_encoder_dir).embed([h["_source"]["title"] for h in hits])
    np.testing.assert_allclose(stored, fresh, atol=1e-6)


def test_embed_maps_an_hnsw_field_on_an_opensearch_knn_index(
    os_upstream: str, bi_encoder_dir: Path
) -> None:
    index = f"stored-vectors-knn-{uuid.uuid4().hex[:8]}"
    body = {
        "settings": {"index.knn": True},
        "mappings": {"properties": {"title": {"type": "text"}}},
    }
    assert httpx.put(f"{os_upstream}/{index}", json=body).status_code == 200
    try:
        httpx.post(f"{os_upstream}/{index}/_doc?refresh=true", json={"title": TITLES[0]})
        argv = ["embed", "--engine", os_upstream, "--index", index, "--quiet"]
        assert cli([*argv, "--model", str(bi_encoder_dir)]) == 0
        mapping = httpx.get(f"{os_upstream}/{index}/_mapping").json()[index]["mappings"]
        assert mapping["properties"][FIELD]["method"]["name"] == "hnsw"
        query_vector = load_scorer(bi_encoder_dir).embed([TITLES[0]])[0].tolist()
        knn = {"knn": {FIELD: {"vector": query_vector, "k": 1}}}
        hits = httpx.post(f"{os_upstream}/{index}/_search", json={"query": knn}).json()
        assert hits["hits"]["hits"][0]["_score"] == pytest.approx(1.0, abs=1e-4)
    finally:
        httpx.delete(f"{os_upstream}/{index}")


# a list value, objects in an array (reached by a dotted path), a plain value, a missing field
SHAPED_DOCS = {
    "lists": {
        "title": "drill",
        "tags": ["cordless", "18v"],
        "brand": [{"name": "Makita"}, {"name": "Bosch"}],
    },
    "plain": {"title": "hose", "tags": "garden", "brand": {"name": "Gardena"}},
    "missing": {"title": "saw"},
}


@pytest.mark.parametrize(
    ("field", "into"), [("tags", "tags_vector"), ("brand.name", "brand_vector")]
)
def test_embed_stores_the_vector_of_the_passage_the_phase_embeds(
    engine: tuple[str, str], models: Models, bi_encoder_dir: Path, field: str, into: str
) -> None:
    """Each stored vector is the one a phase with ``"fields": [field]`` computes for the hit
    without it: same scores with and without ``vector_field``, every document with text stored."""
    _, url = engine
    index = f"stored-vectors-shapes-{uuid.uuid4().hex[:8]}"
    lines = []
    for doc_id, doc in SHAPED_DOCS.items():
        lines += [json.dumps({"index": {"_id": doc_id}}), json.dumps(doc)]
    bulk = httpx.post(
        f"{url}/{index}/_bulk?refresh=true",
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not bulk.json()["errors"]
    try:
        argv = ["embed", "--engine", url, "--index", index, "--field", field, "--into", into]
        assert cli([*argv, "--model", str(bi_encoder_dir), "--quiet"]) == 0
        body = {"query": {"match_all": {}}, "size": 3}
        rerank = {
            **section(models, vector_field=None),
            "fields": [field],
            "query": "cordless drill",
        }
        reference = search_sync(engine, index, models, rerank, body)
        rerank["phases"] = [{**rerank["phases"][0], "vector_field": into}]
        answer = search_sync(engine, index, models, rerank, body)
    finally:
        httpx.delete(f"{url}/{index}")
    report = vectors_report(answer)
    assert (report["stored"], report["missing"]) == (2, 1), report
    assert model_scores(answer) == pytest.approx(model_scores(reference), abs=1e-5)


def test_a_phase_scores_from_the_stored_vectors_through_every_door(
    engine: tuple[str, str], embedded_index: str, models: Models, start_proxy: StartProxy
) -> None:
    reference = search_sync(engine, embedded_index, models, section(models, vector_field=None))
    answers = through_doors(engine, embedded_index, models, start_proxy, section(models))
    for door, (answer, embedded) in answers.items():
        assert (door, answer["rerank"]["status"]) == (door, "ok")
        report = vectors_report(answer)
        assert (door, report["stored"], report["embedded"]) == (door, 5, 0), report
        assert (door, embedded) == (door, ["drill"])  # only the query was embedded
        assert [h["_id"] for h in answer["hits"]["hits"]] == [
            h["_id"] for h in reference["hits"]["hits"]
        ]
        mine, theirs = model_scores(answer), model_scores(reference)
        assert mine.keys() == theirs.keys()
        for hit_id, score in mine.items():
            assert score == pytest.approx(theirs[hit_id], abs=1e-5), (door, hit_id)
        # the vectors the phase asked for do not reach the caller
        assert all("fields" not in hit for hit in answer["hits"]["hits"]), door


def test_vectors_of_another_model_are_embedded_again_with_a_warning(
    engine: tuple[str, str], embedded_index: str, models: Models, start_proxy: StartProxy
) -> None:
    _, url = engine
    mapping = httpx.get(f"{url}/{embedded_index}/_mapping").json()[embedded_index]["mappings"]
    meta = mapping["_meta"]
    meta[META_KEY][FIELD]["fingerprint"] = "sha256:" + "0" * 64
    meta[META_KEY][FIELD]["model"] = "some-other-model"
    assert httpx.put(f"{url}/{embedded_index}/_mapping", json={"_meta": meta}).status_code == 200
    reference = search_sync(engine, embedded_index, models, section(models, vector_field=None))
    for door, (answer, embedded) in through_doors(
        engine, embedded_index, models, start_proxy, section(models)
    ).items():
        report = vectors_report(answer)
        assert (door, report["stored"], report["embedded"], report["other_model"]) == (
            door,
            0,
            5,
            5,
        )
        assert "some-other-model" in report["warnings"][0]
        assert (door, len(embedded)) == (door, 6)  # the query and the five titles
        for hit_id, score in model_scores(answer).items():
            assert score == pytest.approx(model_scores(reference)[hit_id], abs=1e-5)


def test_a_missing_vector_field_is_embedded(
    engine: tuple[str, str], embedded_index: str, models: Models
) -> None:
    reference = search_sync(engine, embedded_index, models, section(models, vector_field=None))
    answer = search_sync(
        engine, embedded_index, models, section(models, vector_field="no_such_vector")
    )
    report = vectors_report(answer)
    assert (report["stored"], report["embedded"], report["missing"]) == (0, 5, 5)
    assert model_scores(answer) == pytest.approx(model_scores(reference), abs=1e-5)


def test_vectors_of_another_dimension_are_embedded_with_a_warning(
    engine: tuple[str, str], models: Models
) -> None:
    _, url = engine
    index = make_index(url, dynamic_vectors=[0.1, 0.2, 0.3])
    try:
        reference = search_sync(engine, index, models, section(models, vector_field=None))
        answer = search_sync(engine, index, models, section(models))
    finally:
        httpx.delete(f"{url}/{index}")
    report = vectors_report(answer)
    assert (report["stored"], report["embedded"], report["wrong_dimension"]) == (0, 5, 5)
    assert "384 dimensions" in report["warnings"][0]
    assert model_scores(answer) == pytest.approx(model_scores(reference), abs=1e-5)


def test_embed_refuses_bad_input_in_one_line(
    engine: tuple[str, str],
    embedded_index: str,
    bi_encoder_dir: Path,
    nano_cross_encoder_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = engine
    base = ["embed", "--engine", url, "--quiet"]
    cases = {
        "not a bi-encoder": [
            *base,
            *("--index", embedded_index, "--model", str(nano_cross_encoder_dir)),
        ],
        "index 'no-such-index-w18' not found": [
            *base,
            *("--index", "no-such-index-w18", "--model", str(bi_encoder_dir)),
        ],
        "--max-length must be at least 1": [
            *base,
            *("--index", embedded_index, "--model", str(bi_encoder_dir), "--max-length", "0"),
        ],
        "mapped as 'text', not a vector": [
            *base,
            *("--index", embedded_index, "--model", str(bi_encoder_dir)),
            *("--field", "title", "--into", "title_copy"),
        ],
    }
    httpx.put(
        f"{url}/{embedded_index}/_mapping", json={"properties": {"title_copy": {"type": "text"}}}
    )
    for expected, argv in cases.items():
        assert cli(argv) == 2, expected
        err = capsys.readouterr().err.strip()
        assert expected in err, err
        assert "\n" not in err, err
        assert "Traceback" not in err


def test_embed_shows_its_progress_on_stderr_without_tqdm(
    es_upstream: str,
    bi_encoder_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as in a core install
    index = make_index(es_upstream)
    try:
        argv = ["embed", "--engine", es_upstream, "--index", index, "--batch-size", "2"]
        assert cli([*argv, "--model", str(bi_encoder_dir)]) == 0
    finally:
        httpx.delete(f"{es_upstream}/{index}")
    lines = capsys.readouterr().err.strip().splitlines()
    total = len(TITLES)
    assert lines[-1] == f"embedding {index}.title: {total}/{total} doc", lines


# long texts: the first 16 tokens keep little more than the title, the model's default keeps all
FILLER = (
    "sold with a two year warranty, free delivery to the curb, a carrying case, two spare "
    "batteries, a charger, a belt clip and an illustrated manual in five languages; returns "
    "are accepted within ninety days of purchase with the original receipt"
)
LONG_TITLES = [f"{title} {FILLER} ({i})" for i, title in enumerate(TITLES)]
SHORT = 16


def embed_long(url: str, bi_encoder_dir: Path, *extra: str) -> str:
    index = make_index(url, titles=LONG_TITLES)
    argv = ["embed", "--engine", url, "--index", index, "--model", str(bi_encoder_dir)]
    try:
        assert cli([*argv, "--quiet", *extra]) == 0
    except BaseException:  # a failing embed (e.g. an unknown option) leaves no index behind
        httpx.delete(f"{url}/{index}")
        raise
    return index


def stored_meta(url: str, index: str) -> dict[str, Any]:
    mapping = httpx.get(f"{url}/{index}/_mapping").json()[index]["mappings"]
    meta: dict[str, Any] = mapping["_meta"]
    return meta


def limited(models: Models, vector_field: str | None, max_length: int | None) -> dict[str, Any]:
    rerank = section(models, vector_field)
    return rerank if max_length is None else {**rerank, "max_length": max_length}


def test_vectors_stored_at_another_max_length_are_embedded_live_with_a_warning(
    engine: tuple[str, str], bi_encoder_dir: Path, models: Models, start_proxy: StartProxy
) -> None:
    """Texts cut at 16 tokens when stored, at the model's default (256) by the phase: the
    stored vectors are not what the phase computes, so every door embeds those hits live."""
    _, url = engine
    index = embed_long(url, bi_encoder_dir, "--max-length", str(SHORT))
    try:
        assert stored_meta(url, index)[META_KEY][FIELD]["max_length"] == SHORT
        reference = search_sync(engine, index, models, section(models, vector_field=None))
        stale = search_sync(engine, index, models, limited(models, None, SHORT))
        answers = through_doors(engine, index, models, start_proxy, section(models))
    finally:
        httpx.delete(f"{url}/{index}")
    # the limit matters for these texts: scores at 16 tokens differ from those at the default
    assert any(
        abs(score - model_scores(stale)[hit_id]) > 1e-3
        for hit_id, score in model_scores(reference).items()
    )
    for door, (answer, embedded) in answers.items():
        report = vectors_report(answer)
        assert (door, report["stored"], report["embedded"], report["other_model"]) == (
            door,
            0,
            5,
            5,
        )
        assert f"cut at {SHORT} tokens" in report["warnings"][0], (door, report)
        assert (door, len(embedded)) == (door, 6)  # the query and the five texts, live
        for hit_id, score in model_scores(answer).items():
            assert score == pytest.approx(model_scores(reference)[hit_id], abs=1e-5), door


def test_vectors_stored_at_the_phases_max_length_are_used(
    engine: tuple[str, str], bi_encoder_dir: Path, models: Models, start_proxy: StartProxy
) -> None:
    """Stored at 16 tokens, read by a phase at 16 (the wrappers' rerank.max_length, the proxy's
    configured one): the stored vectors are used and score as the phase's live embedding."""
    _, url = engine
    index = embed_long(url, bi_encoder_dir, "--max-length", str(SHORT))
    try:
        reference = search_sync(engine, index, models, limited(models, None, SHORT))
        answers = through_doors(
            engine,
            index,
            models,
            start_proxy,
            limited(models, FIELD, SHORT),
            proxy_rerank={"max_length": SHORT},
        )
    finally:
        httpx.delete(f"{url}/{index}")
    for door, (answer, embedded) in answers.items():
        assert (door, answer["rerank"]["status"]) == (door, "ok")
        report = vectors_report(answer)
        assert (door, report["stored"], report["embedded"]) == (door, 5, 0), report
        assert "warnings" not in report, (door, report)
        assert (door, embedded) == (door, ["drill"])  # only the query was embedded
        for hit_id, score in model_scores(answer).items():
            assert score == pytest.approx(model_scores(reference)[hit_id], abs=1e-5), door


def test_an_old_record_without_max_length_reads_as_the_models_default(
    engine: tuple[str, str], bi_encoder_dir: Path, models: Models
) -> None:
    """A record written before the limit was recorded (no ``max_length``) was embedded at the
    model's default: a phase at the default uses it, a phase at 16 tokens embeds live."""
    _, url = engine
    index = embed_long(url, bi_encoder_dir)
    try:
        meta = stored_meta(url, index)
        assert meta[META_KEY][FIELD]["max_length"] == models.bi.max_length
        del meta[META_KEY][FIELD]["max_length"]
        assert httpx.put(f"{url}/{index}/_mapping", json={"_meta": meta}).status_code == 200
        assert "max_length" not in stored_meta(url, index)[META_KEY][FIELD]
        at_default = search_sync(engine, index, models, section(models))
        reference = search_sync(engine, index, models, limited(models, None, SHORT))
        at_short = search_sync(engine, index, models, limited(models, FIELD, SHORT))
    finally:
        httpx.delete(f"{url}/{index}")
    report = vectors_report(at_default)
    assert (report["stored"], report["embedded"], report["other_model"]) == (5, 0, 0), report
    report = vectors_report(at_short)
    assert (report["stored"], report["embedded"], report["other_model"]) == (0, 5, 5), report
    assert f"cut at {models.bi.max_length} tokens" in report["warnings"][0]
    for hit_id, score in model_scores(at_short).items():
        assert score == pytest.approx(model_scores(reference)[hit_id], abs=1e-5)
