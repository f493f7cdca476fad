"""RerankingSearch / AsyncRerankingSearch on real Elasticsearch and OpenSearch nodes.

A small product catalogue is indexed (with all-MiniLM-L6-v2 embeddings) once per engine; the
trained Home Depot cross-encoder reranks (the project's nano one where ../shared is absent).
Expected values always come from the engine itself (the plain request) or from the scorer itself,
never from hard-coded results.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.errors import UnsupportedSearchError
from bridge.scoring import shared_scorers
from bridge.search import AsyncRerankingSearch, RerankingSearch
from tests.support.shared import shared_location

pytestmark = [pytest.mark.integration]

PRODUCTS = [
    ("DEWALT 20V MAX cordless drill driver kit", "DEWALT", "compact drill with two batteries"),
    ("Makita 18V LXT cordless hammer drill", "Makita", "hammer drill for masonry and wood"),
    ("Ryobi ONE+ 18V cordless drill bit set", "Ryobi", "drill bits for wood and metal"),
    ("BLACK+DECKER corded drill 5.2 amp", "BLACK+DECKER", "corded drill for home projects"),
    ("Milwaukee M18 cordless impact driver", "Milwaukee", "impact driver for screws and bolts"),
    ("Bosch 12V cordless pocket driver", "Bosch", "small screwdriver for tight spaces"),
    ("Flexzilla 50 ft garden hose", "Flexzilla", "lightweight hose for the garden"),
    ("Melnor 4-zone garden hose timer", "Melnor", "water timer for hoses"),
    ("Behr Premium Plus interior paint white", "Behr", "eggshell interior paint one gallon"),
    ("Glidden exterior paint and primer", "Glidden", "exterior paint for siding"),
    ("Purdy paint brush 2 inch angled", "Purdy", "brush for trim and cutting in"),
    ("Wooster paint roller cover 9 inch", "Wooster", "roller for walls with paint"),
    ("Kohler bathroom sink faucet chrome", "Kohler", "two handle faucet for bathroom sinks"),
    ("Moen kitchen faucet with pull down sprayer", "Moen", "kitchen sink faucet stainless"),
    ("Delta shower head rain 8 inch", "Delta", "rain shower head chrome"),
    ("Husky 3-drawer tool chest", "Husky", "metal tool storage chest"),
    ("Stanley 25 ft tape measure", "Stanley", "tape measure with magnetic hook"),
    ("Klein Tools wire strippers", "Klein Tools", "wire stripper and cutter for electricians"),
    ("Leviton 15 amp outlet white", "Leviton", "duplex receptacle outlet"),
    ("Lutron dimmer switch for LED bulbs", "Lutron", "dimmer switch single pole"),
    ("Cree 60W LED light bulb soft white", "Cree", "LED bulb for lamps"),
    ("Philips LED flood light bulb", "Philips", "outdoor flood light LED"),
    ("Scotts Turf Builder lawn fertilizer", "Scotts", "fertilizer for green lawns"),
    ("Greenworks 40V cordless lawn mower", "Greenworks", "battery lawn mower 16 inch"),
    ("EGO 56V cordless leaf blower", "EGO", "battery leaf blower for yard"),
    ("Craftsman cordless drill 20V with charger", "Craftsman", "drill driver kit with charger"),
    ("Ridgid wet dry vacuum 12 gallon", "Ridgid", "shop vacuum for garage"),
    ("DEWALT drill bit set titanium 21 piece", "DEWALT", "titanium drill bits for metal"),
]
DIMS = 384
MATCH = {"match": {"title": "cordless drill"}}
AGGS = {"brands": {"terms": {"field": "brand", "size": 50}}}


@pytest.fixture(scope="module")
def cross_encoder(request: pytest.FixtureRequest) -> str:
    """The trained Home Depot cross-encoder when ../shared has it, else the project's nano one."""
    trained = shared_location() / "models" / "homedepot-minilm-l6-ce"
    if (trained / "model.onnx").is_file():
        model = str(trained)
    else:
        model = str(request.getfixturevalue("nano_cross_encoder_dir"))
    shared_scorers.get(model)  # load once, outside any timeout
    return model


@pytest.fixture(scope="module")
def embedder(bi_encoder_dir: Path) -> Any:
    return shared_scorers.get(str(bi_encoder_dir))


def _documents(embedder: Any) -> list[dict[str, Any]]:
    vectors = embedder.embed([title for title, _, _ in PRODUCTS])
    return [
        {
            "title": title,
            "brand": brand,
            "description": description,
            "price": float(10 + i),
            "details": {"sku": f"sku-{i}", "color": "red" if i % 2 else "blue"},
            "embedding": [float(x) for x in vectors[i]],
        }
        for i, (title, brand, description) in enumerate(PRODUCTS)
    ]


def _properties(vector: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": {"type": "text", "analyzer": "standard"},
        "brand": {"type": "keyword"},
        "description": {"type": "text", "analyzer": "standard"},
        "price": {"type": "float"},
        "details": {"properties": {"sku": {"type": "keyword"}, "color": {"type": "keyword"}}},
        "embedding": vector,
    }


@pytest.fixture(scope="module")
def es(es_url: str, embedder: Any) -> Iterator[tuple[Any, str]]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    index = f"test-search-{uuid.uuid4().hex[:8]}"
    vector = {"type": "dense_vector", "dims": DIMS, "index": True, "similarity": "cosine"}
    client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={"properties": _properties(vector)},
    )
    for i, doc in enumerate(_documents(embedder)):
        client.index(index=index, id=f"p{i}", document=doc)
    client.indices.refresh(index=index)
    yield client, index
    client.indices.delete(index=index, ignore_unavailable=True)
    client.close()


@pytest.fixture(scope="module")
def opensearch(os_url: str, embedder: Any) -> Iterator[tuple[Any, str]]:
    from opensearchpy import OpenSearch

    client = OpenSearch(os_url, timeout=60)
    index = f"test-search-{uuid.uuid4().hex[:8]}"
    knn_ok = _opensearch_has_knn(client)
    vector = (
        {
            "type": "knn_vector",
            "dimension": DIMS,
            "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
        }
        if knn_ok
        else {"type": "object", "enabled": False}
    )
    settings: dict[str, Any] = {"number_of_shards": 1, "number_of_replicas": 0}
    if knn_ok:
        settings["index.knn"] = True
    client.indices.create(
        index=index, body={"settings": settings, "mappings": {"properties": _properties(vector)}}
    )
    for i, doc in enumerate(_documents(embedder)):
        client.index(index=index, id=f"p{i}", body=doc)
    client.indices.refresh(index=index)
    yield client, index
    client.indices.delete(index=index, ignore_unavailable=True)
    client.close()


def _opensearch_has_knn(client: Any) -> bool:
    plugins = client.cat.plugins(format="json")
    return any(p.get("component") == "opensearch-knn" for p in plugins)


def _body(response: Any) -> dict[str, Any]:
    return dict(getattr(response, "body", response))


def _ids(response: Any) -> list[str]:
    return [hit["_id"] for hit in _body(response)["hits"]["hits"]]


def _rerank(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "fields": ["title", "description"], "timeout_ms": None, **extra}


class SlowScorers:
    """Fault injection: a registry whose scorer sleeps before scoring (a slow model)."""

    def __init__(self, model: str, delay: float) -> None:
        self.inner = shared_scorers.get(model)
        self.delay = delay

    def get(self, model: str, *, max_length: int | None = None) -> SlowScorers:
        return self

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        time.sleep(self.delay)
        return list(self.inner.score(query, passages))

    def embed(self, texts: Sequence[str]) -> Any:
        return self.inner.embed(texts)


# -- Elasticsearch -------------------------------------------------------------------------


def test_es_bm25_rerank_orders_by_model_score(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder)
    )
    scores = [hit["_score"] for hit in answer["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_es_bm25_rerank_score_is_the_scorers_score(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = _body(client.search(index=index, query=MATCH, size=20))["hits"]["hits"]
    passages = [f"{h['_source']['title']}\n{h['_source']['description']}" for h in plain]
    # Score the same window in one batch, as the wrapper does (int8 models are batch-sensitive).
    scores = shared_scorers.get(cross_encoder).score("cordless drill", passages)
    expected = {hit["_id"]: score for hit, score in zip(plain, scores, strict=True)}
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=3, rerank=_rerank(cross_encoder)
    )
    top = answer["hits"]["hits"][0]
    assert top["_score"] == pytest.approx(expected[top["_id"]], abs=1e-6)


def test_es_rerank_reorders_the_engine_window(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, size=20)
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder)
    )
    assert sorted(_ids(answer)) == sorted(_ids(plain))


def test_es_rerank_order_is_the_scorers_order_of_the_engine_window(
    es: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = es
    plain = _body(client.search(index=index, query=MATCH, size=20))["hits"]["hits"]
    passages = [f"{h['_source']['title']}\n{h['_source']['description']}" for h in plain]
    scores = shared_scorers.get(cross_encoder).score("cordless drill", passages)
    expected = [plain[i]["_id"] for i in sorted(range(len(plain)), key=lambda i: -scores[i])]
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder)
    )
    assert _ids(answer) == expected


def test_es_returns_object_api_response_with_same_meta(
    es: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = es
    answer = RerankingSearch(client).search(index=index, query=MATCH, rerank=_rerank(cross_encoder))
    assert (type(answer).__name__, answer.meta.status) == ("ObjectApiResponse", 200)


def test_es_without_rerank_is_the_plain_response(es: tuple[Any, str]) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, size=4)
    assert _ids(RerankingSearch(client).search(index=index, query=MATCH, size=4)) == _ids(plain)


class RecordingClient:
    """Forwards to the real client and keeps what it returned."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.returned: list[Any] = []

    def search(self, **kwargs: Any) -> Any:
        self.returned.append(self.client.search(**kwargs))
        return self.returned[-1]


def test_es_without_rerank_returns_the_clients_own_object(es: tuple[Any, str]) -> None:
    client, index = es
    recording = RecordingClient(client)
    answer = RerankingSearch(recording).search(index=index, query=MATCH, size=4)
    assert answer is recording.returned[0]


def test_es_retriever_query_is_reranked(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    retriever = {"standard": {"query": MATCH}}
    plain = client.search(index=index, retriever=retriever, size=20)
    answer = RerankingSearch(client).search(
        index=index, retriever=retriever, size=20, rerank=_rerank(cross_encoder, explain=True)
    )
    assert (sorted(_ids(answer)), answer["rerank"]["query"]) == (
        sorted(_ids(plain)),
        "cordless drill",
    )


def test_es_aggregations_identical_to_plain_request(
    es: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, aggs=AGGS, size=3)
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, aggs=AGGS, size=3, rerank=_rerank(cross_encoder)
    )
    assert answer["aggregations"] == plain["aggregations"]


def test_es_total_hits_identical_to_plain_request(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, size=3)
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=3, rerank=_rerank(cross_encoder)
    )
    assert answer["hits"]["total"] == plain["hits"]["total"]


def test_es_response_keys_are_the_engines(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, aggs=AGGS, size=3)
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, aggs=AGGS, size=3, rerank=_rerank(cross_encoder)
    )
    assert set(_body(answer)) == set(_body(plain))


def test_es_highlight_identical_to_plain_request(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    highlight = {"fields": {"title": {}}}
    plain = _body(client.search(index=index, query=MATCH, highlight=highlight, size=20))
    expected = {hit["_id"]: hit["highlight"] for hit in plain["hits"]["hits"]}
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, highlight=highlight, size=20, rerank=_rerank(cross_encoder)
    )
    assert {hit["_id"]: hit["highlight"] for hit in answer["hits"]["hits"]} == expected


def test_es_min_score_drops_hits_below_the_model_score(
    es: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = es
    search = RerankingSearch(client)
    everything = search.search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder, explain=True)
    )
    model = sorted(h["_rerank"]["model_score"] for h in everything["hits"]["hits"])
    threshold = model[len(model) // 2]  # the median: some hits go, some stay
    kept = [
        h["_id"] for h in everything["hits"]["hits"] if h["_rerank"]["model_score"] >= threshold
    ]
    answer = search.search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder, min_score=threshold)
    )
    assert _ids(answer) == kept


def test_es_explain_shows_engine_score_and_rank(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = _body(client.search(index=index, query=MATCH, size=20))
    engine = {
        hit["_id"]: (hit["_score"], rank) for rank, hit in enumerate(plain["hits"]["hits"], 1)
    }
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=10, rerank=_rerank(cross_encoder, explain=True)
    )
    shown = {
        hit["_id"]: (hit["_rerank"]["engine_score"], hit["_rerank"]["engine_rank"])
        for hit in answer["hits"]["hits"]
    }
    assert shown == {doc: engine[doc] for doc in shown}


def test_es_explain_shows_model_score_per_hit(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder, explain=True)
    )
    assert all(0.0 <= hit["_rerank"]["model_score"] <= 1.0 for hit in answer["hits"]["hits"])


def test_es_timeout_returns_engine_order(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, size=5)
    search = RerankingSearch(client, scorers=SlowScorers(cross_encoder, delay=1.0))
    answer = search.search(
        index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder, timeout_ms=100)
    )
    assert _ids(answer) == _ids(plain)


def test_es_timeout_is_flagged_in_explain(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    search = RerankingSearch(client, scorers=SlowScorers(cross_encoder, delay=1.0))
    answer = search.search(
        index=index,
        query=MATCH,
        size=5,
        rerank=_rerank(cross_encoder, timeout_ms=100, explain=True),
    )
    assert answer["rerank"]["status"] == "timeout"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": False},
        {"source": ["price"]},
        {"source": {"includes": ["details.*", "price"]}},
        {"source": {"excludes": ["description", "embedding"]}},
        {"source": "bra*"},
        {"source_includes": ["price", "details.sku"]},
        {"source_excludes": ["embedding", "title"]},
        {"source": {"includes": ["*e"]}},
        {"source": {"excludes": ["*.color", "embedding"]}},
        {"source": {"includes": ["details", "tit*"], "excludes": ["*.sku", "title"]}},
    ],
)
def test_es_source_is_exactly_what_was_asked(
    es: tuple[Any, str], cross_encoder: str, kwargs: dict[str, Any]
) -> None:
    client, index = es
    plain = _body(client.search(index=index, query=MATCH, size=20, **kwargs))
    expected = {hit["_id"]: hit.get("_source", "absent") for hit in plain["hits"]["hits"]}
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder), **kwargs
    )
    got = {hit["_id"]: hit.get("_source", "absent") for hit in answer["hits"]["hits"]}
    assert got == expected


@pytest.mark.parametrize("filter_path", ["hits.hits._id,hits.total", "-hits.hits._source,-took"])
def test_es_filter_path_shapes_the_answer_like_the_plain_request(
    es: tuple[Any, str], cross_encoder: str, filter_path: str
) -> None:
    client, index = es
    plain = _body(client.search(index=index, query=MATCH, size=5, filter_path=filter_path))
    answer = _body(
        RerankingSearch(client).search(
            index=index, query=MATCH, size=5, filter_path=filter_path, rerank=_rerank(cross_encoder)
        )
    )
    assert _shape(answer) == _shape(plain)


def _shape(value: Any) -> Any:
    """Keys all the way down (values and order of hits aside)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items() if key != "took"}
    if isinstance(value, list):
        return sorted(repr(_shape(item)) for item in value)
    return type(value).__name__


def test_es_pages_are_slices_of_one_order(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    search = RerankingSearch(client)
    config = _rerank(cross_encoder, window_size=8)
    whole = _ids(search.search(index=index, query=MATCH, size=12, rerank=config))
    pages: list[str] = []
    for start in range(0, 12, 3):
        pages.extend(
            _ids(search.search(index=index, query=MATCH, from_=start, size=3, rerank=config))
        )
    assert pages == whole


def test_es_body_style_matches_keyword_style(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    search = RerankingSearch(client)
    keyword = search.search(index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder))
    body = search.search(
        index=index, body={"query": MATCH, "size": 5, "rerank": _rerank(cross_encoder)}
    )
    assert _ids(body) == _ids(keyword)


def test_es_non_score_sort_is_refused(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    with pytest.raises(UnsupportedSearchError):
        RerankingSearch(client).search(
            index=index,
            query=MATCH,
            sort=[{"price": "asc"}],
            rerank=_rerank(cross_encoder, on_failure="error"),
        )


def test_es_non_score_sort_passes_through_with_on_failure_original(
    es: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = es
    plain = client.search(index=index, query=MATCH, sort=[{"price": "asc"}])
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, sort=[{"price": "asc"}], rerank=_rerank(cross_encoder)
    )
    assert _ids(answer) == _ids(plain)


def test_es_knn_query_text_is_embedded_and_reranked(
    es: tuple[Any, str], cross_encoder: str, bi_encoder_dir: Path
) -> None:
    client, index = es
    vector = [float(x) for x in shared_scorers.get(str(bi_encoder_dir)).embed(["garden hose"])[0]]
    knn = {"field": "embedding", "k": 10, "num_candidates": 28}
    plain = client.search(index=index, knn={**knn, "query_vector": vector}, size=10)
    answer = RerankingSearch(client, defaults={"embedding_model": str(bi_encoder_dir)}).search(
        index=index,
        knn={**knn, "query_text": "garden hose"},
        size=10,
        rerank=_rerank(cross_encoder, window_size=10),
    )
    assert sorted(_ids(answer)) == sorted(_ids(plain))


def test_es_hybrid_reranks_the_fused_candidates(
    es: tuple[Any, str], cross_encoder: str, bi_encoder_dir: Path
) -> None:
    client, index = es
    vector = [float(x) for x in shared_scorers.get(str(bi_encoder_dir)).embed(["paint"])[0]]
    knn = {"field": "embedding", "k": 5, "num_candidates": 28}
    query = {"match": {"title": "paint"}}
    plain = client.search(index=index, query=query, knn={**knn, "query_vector": vector}, size=8)
    answer = RerankingSearch(client).search(
        index=index,
        query=query,
        knn={**knn, "query_vector": vector},
        size=8,
        rerank=_rerank(cross_encoder, window_size=8, explain=True),
    )
    assert (sorted(_ids(answer)), answer["rerank"]["status"]) == (sorted(_ids(plain)), "ok")


async def test_es_async_matches_sync(es_url: str, es: tuple[Any, str], cross_encoder: str) -> None:
    from elasticsearch import AsyncElasticsearch

    client, index = es
    expected = _ids(
        RerankingSearch(client).search(
            index=index, query=MATCH, size=6, rerank=_rerank(cross_encoder)
        )
    )
    async_client = AsyncElasticsearch(es_url)
    try:
        async with AsyncRerankingSearch(async_client) as search:
            answer = await search.search(
                index=index, query=MATCH, size=6, rerank=_rerank(cross_encoder)
            )
    finally:
        await async_client.close()
    assert _ids(answer) == expected


async def test_es_async_timeout_returns_engine_order(
    es_url: str, es: tuple[Any, str], cross_encoder: str
) -> None:
    from elasticsearch import AsyncElasticsearch

    client, index = es
    plain = client.search(index=index, query=MATCH, size=5)
    async_client = AsyncElasticsearch(es_url)
    try:
        search = AsyncRerankingSearch(async_client, scorers=SlowScorers(cross_encoder, 1.0))
        answer = await search.search(
            index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder, timeout_ms=100)
        )
        await search.close()
    finally:
        await async_client.close()
    assert _ids(answer) == _ids(plain)


# -- OpenSearch ----------------------------------------------------------------------------


def test_os_bm25_rerank_returns_a_dict_in_fused_order(
    opensearch: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = opensearch
    answer = RerankingSearch(client).search(
        index=index, body={"query": MATCH, "size": 5}, rerank=_rerank(cross_encoder)
    )
    scores = [hit["_score"] for hit in answer["hits"]["hits"]]
    assert (type(answer), scores) == (dict, sorted(scores, reverse=True))


def test_os_rerank_keeps_the_engine_candidates(
    opensearch: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = opensearch
    plain = client.search(index=index, body={"query": MATCH, "size": 20})
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=20, rerank=_rerank(cross_encoder)
    )
    assert sorted(_ids(answer)) == sorted(_ids(plain))


def test_os_aggregations_identical_to_plain_request(
    opensearch: tuple[Any, str], cross_encoder: str
) -> None:
    client, index = opensearch
    plain = client.search(index=index, body={"query": MATCH, "aggs": AGGS, "size": 3})
    answer = RerankingSearch(client).search(
        index=index, body={"query": MATCH, "aggs": AGGS, "size": 3}, rerank=_rerank(cross_encoder)
    )
    assert answer["aggregations"] == plain["aggregations"]


@pytest.mark.parametrize(
    "source",
    [
        {"includes": ["price", "details.color"]},
        {"includes": ["*e"]},
        {"excludes": ["details.sku", "embedding", "title"]},
        False,
    ],
)
def test_os_source_is_exactly_what_was_asked(
    opensearch: tuple[Any, str], cross_encoder: str, source: Any
) -> None:
    client, index = opensearch
    body = {"query": MATCH, "size": 20, "_source": source}
    plain = client.search(index=index, body=body)
    answer = RerankingSearch(client).search(index=index, body=body, rerank=_rerank(cross_encoder))
    expected = {hit["_id"]: hit.get("_source", "absent") for hit in plain["hits"]["hits"]}
    got = {hit["_id"]: hit.get("_source", "absent") for hit in answer["hits"]["hits"]}
    assert got == expected


def test_os_explain_shows_engine_rank(opensearch: tuple[Any, str], cross_encoder: str) -> None:
    client, index = opensearch
    plain = client.search(index=index, body={"query": MATCH, "size": 20})
    rank = {hit["_id"]: r for r, hit in enumerate(plain["hits"]["hits"], 1)}
    answer = RerankingSearch(client).search(
        index=index, query=MATCH, size=10, rerank=_rerank(cross_encoder, explain=True)
    )
    shown = {hit["_id"]: hit["_rerank"]["engine_rank"] for hit in answer["hits"]["hits"]}
    assert shown == {doc: rank[doc] for doc in shown}


def test_os_knn_query_text_is_embedded_and_reranked(
    opensearch: tuple[Any, str], cross_encoder: str, bi_encoder_dir: Path
) -> None:
    client, index = opensearch
    if not _opensearch_has_knn(client):
        pytest.skip("the OpenSearch node has no k-NN plugin")
    vector = [float(x) for x in shared_scorers.get(str(bi_encoder_dir)).embed(["light bulb"])[0]]
    plain = client.search(
        index=index,
        body={"query": {"knn": {"embedding": {"vector": vector, "k": 10}}}, "size": 10},
    )
    answer = RerankingSearch(client, defaults={"embedding_model": str(bi_encoder_dir)}).search(
        index=index,
        body={"query": {"knn": {"embedding": {"query_text": "light bulb", "k": 10}}}, "size": 10},
        rerank=_rerank(cross_encoder, window_size=10),
    )
    assert sorted(_ids(answer)) == sorted(_ids(plain))


def test_os_lexical_plus_knn_query_is_reranked(
    opensearch: tuple[Any, str], cross_encoder: str, bi_encoder_dir: Path
) -> None:
    client, index = opensearch
    if not _opensearch_has_knn(client):
        pytest.skip("the OpenSearch node has no k-NN plugin")
    vector = [float(x) for x in shared_scorers.get(str(bi_encoder_dir)).embed(["paint"])[0]]

    def body(knn: dict[str, Any]) -> dict[str, Any]:
        should = [{"match": {"title": "paint"}}, {"knn": {"embedding": {**knn, "k": 5}}}]
        return {"query": {"bool": {"should": should}}, "size": 8}

    plain = client.search(index=index, body=body({"vector": vector}))
    answer = RerankingSearch(client, defaults={"embedding_model": str(bi_encoder_dir)}).search(
        index=index,
        body=body({"query_text": "paint"}),
        rerank=_rerank(cross_encoder, window_size=8, explain=True),
    )
    assert (sorted(_ids(answer)), answer["rerank"]["query"]) == (sorted(_ids(plain)), "paint")


def test_os_timeout_returns_engine_order(opensearch: tuple[Any, str], cross_encoder: str) -> None:
    client, index = opensearch
    plain = client.search(index=index, body={"query": MATCH, "size": 5})
    search = RerankingSearch(client, scorers=SlowScorers(cross_encoder, delay=1.0))
    answer = search.search(
        index=index, query=MATCH, size=5, rerank=_rerank(cross_encoder, timeout_ms=100)
    )
    assert _ids(answer) == _ids(plain)


async def test_os_async_matches_sync(
    os_url: str, opensearch: tuple[Any, str], cross_encoder: str
) -> None:
    from opensearchpy import AsyncOpenSearch

    client, index = opensearch
    expected = _ids(
        RerankingSearch(client).search(
            index=index, body={"query": MATCH, "size": 6}, rerank=_rerank(cross_encoder)
        )
    )
    async_client = AsyncOpenSearch(os_url)
    try:
        async with AsyncRerankingSearch(async_client) as search:
            answer = await search.search(
                index=index, body={"query": MATCH, "size": 6}, rerank=_rerank(cross_encoder)
            )
    finally:
        await async_client.close()
    assert _ids(answer) == expected


def test_rerank_config_object_is_accepted(es: tuple[Any, str], cross_encoder: str) -> None:
    client, index = es
    config = RerankConfig(model=cross_encoder, fields=("title",), timeout_ms=None, explain=True)
    answer = RerankingSearch(client).search(index=index, query=MATCH, size=3, rerank=config)
    assert answer["rerank"]["status"] == "ok"
