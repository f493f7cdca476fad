"""Hostile request bodies on the rerank routes, against a real Elasticsearch node and a real model.

The JSON is written by hand (not by `json.dumps`) so it can carry what a hostile client sends and
`json.dumps` never writes: lone UTF-16 surrogate escapes (`"\\ud800"`, legal JSON that both engines
store and return), raw control characters, numbers beyond any float or `int` limit and nesting a
thousand levels deep. Whatever arrives, the proxy answers the way the engine would (its answer, or
a 4xx in the engine's error shape); a 5xx is only acceptable as 502/504 (the engine failed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from bridge.proxy.app import create_app
from bridge.proxy.settings import settings_from_mapping
from tests.support.proxy_server import ProxyServer

pytestmark = pytest.mark.integration

LONE_SURROGATE_BODY = b'{"query": {"match": {"title": "\\ud800"}}, "rerank": {}}'
ACCEPTED = {200, 400, 404, 405, 413, 502, 504}
FIELD = "title"


@pytest.fixture(scope="module")
def hostile_index(es_upstream: str) -> Iterator[str]:
    """Products, one stored with a lone surrogate in its title (both engines allow it)."""
    index = f"proxy-hostile-{uuid.uuid4().hex[:8]}"
    assert httpx.put(f"{es_upstream}/{index}", json={}).status_code == 200
    docs = [
        b'{"title": "cordless drill 18v"}',
        b'{"title": "drill bit set \\ud800 titanium"}',
        b'{"title": "hammer drill \\u0000\\u001f with battery"}',
        b'{"title": "garden hose"}',
    ]
    lines = b"".join(b'{"index": {}}\n' + doc + b"\n" for doc in docs)
    bulk = httpx.post(
        f"{es_upstream}/{index}/_bulk?refresh=true",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not bulk.json()["errors"], bulk.text
    yield index
    httpx.delete(f"{es_upstream}/{index}")


@pytest.fixture(scope="module")
def hostile_proxy(
    es_upstream: str, nano_cross_encoder_dir: Path, bi_encoder_dir: Path
) -> Iterator[ProxyServer]:
    proxy_settings = settings_from_mapping(
        {
            "upstream": es_upstream,
            "limits": {"max_body_bytes": 200_000},
            "rerank": {
                "model": str(nano_cross_encoder_dir),
                "embedding_model": str(bi_encoder_dir),
                "fields": [FIELD],
            },
        }
    )
    with ProxyServer(create_app(proxy_settings)) as server:
        yield server


def post(proxy: ProxyServer, path: str, body: bytes, ndjson: bool = False) -> httpx.Response:
    kind = "application/x-ndjson" if ndjson else "application/json"
    return httpx.post(proxy.url + path, content=body, headers={"Content-Type": kind}, timeout=60)


# -- the case the hostile sweep found ---------------------------------------------------------


def test_lone_surrogate_in_the_query_is_searched_as_the_engine_would(
    hostile_proxy: ProxyServer, hostile_index: str, es_upstream: str
) -> None:
    through = post(hostile_proxy, f"/{hostile_index}/_search", LONE_SURROGATE_BODY)
    direct = post_direct(es_upstream, hostile_index, b'{"query": {"match": {"title": "\\ud800"}}}')
    assert (through.status_code, hit_count(through)) == (direct.status_code, hit_count(direct))


def test_lone_surrogate_in_a_stored_title_is_reranked_and_returned_as_stored(
    hostile_proxy: ProxyServer, hostile_index: str
) -> None:
    body = b'{"query": {"match": {"title": "drill"}}, "rerank": {}}'
    response = post(hostile_proxy, f"/{hostile_index}/_search", body)
    titles = {hit["_source"]["title"] for hit in response.json()["hits"]["hits"]}
    assert (response.headers["x-rerank-status"], "drill bit set \ud800 titanium" in titles) == (
        "reranked",
        True,
    )


def test_lone_surrogate_in_the_rerank_query_is_scored(
    hostile_proxy: ProxyServer, hostile_index: str
) -> None:
    body = b'{"query": {"match": {"title": "drill"}}, "rerank": {"query": "drill \\udfff"}}'
    response = post(hostile_proxy, f"/{hostile_index}/_search", body)
    assert (response.status_code, response.headers["x-rerank-status"]) == (200, "reranked")


def test_lone_surrogate_in_an_msearch_line_is_reranked(
    hostile_proxy: ProxyServer, hostile_index: str
) -> None:
    body = b'{}\n{"query": {"match": {"title": "drill \\ud800"}}, "rerank": {}}\n'
    response = post(hostile_proxy, f"/{hostile_index}/_msearch", body, ndjson=True)
    assert (response.status_code, response.headers["x-rerank-status"]) == (200, "reranked")


def post_direct(upstream: str, index: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{upstream}/{index}/_search",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def hit_count(response: httpx.Response) -> int:
    return len(response.json()["hits"]["hits"]) if response.status_code == 200 else -1


# -- the sweep: hand-written JSON with everything json.dumps never writes ---------------------

ESCAPES = st.sampled_from(
    ["\\ud800", "\\udfff", "\\udbff\\udfff", "\\u0000", "\\u001f", "\\n", '\\"', "\\\\", "\\/"]
)
TEXT_CHARS = st.characters(
    max_codepoint=0x10FFFF, exclude_categories=["Cs"], exclude_characters='"\\'
).filter(lambda c: ord(c) >= 0x20)
RAW_CONTROLS = st.characters(max_codepoint=0x1F)  # not allowed raw inside a JSON string


@st.composite
def json_strings(draw: st.DrawFn) -> str:
    piece = st.one_of(ESCAPES, TEXT_CHARS, st.sampled_from(["drill", "hose", " ", "é", "🔨"]))
    return '"' + "".join(draw(st.lists(piece, max_size=6))) + '"'


json_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        ["1e400", "-1e400", "1e-400", "0.0000000000000000000000001", "-0", "1E+2", "2147483648"]
    ),
    st.integers(min_value=20, max_value=6000).map(lambda digits: "9" * digits),
)
# not JSON (Python's parser takes the first three, the engines do not)
broken = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", '"', "[1,]"]),
    st.tuples(json_strings(), RAW_CONTROLS).map(lambda parts: parts[0][:-1] + parts[1] + '"'),
)
scalars = st.one_of(
    json_strings(), json_numbers, st.sampled_from(["true", "false", "null"]), broken
)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(items: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in items) + "}"


json_texts = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(_array),
        st.lists(st.tuples(json_strings(), inner), max_size=3).map(_object),
    ),
    max_leaves=10,
)


@st.composite
def deep(draw: st.DrawFn) -> str:
    """Nesting a parser may refuse (ES stops at 1000 levels by default, Python near 1000 too)."""
    depth = draw(st.integers(min_value=50, max_value=3000))
    if draw(st.booleans()):
        return "[" * depth + "1" + "]" * depth
    return '{"bool":' * depth + "{}" + "}" * depth


values = st.one_of(json_texts, json_texts, json_texts, deep())
# well-formed JSON text (lone surrogate escapes included): the body parses, so it gets planned
words = json_strings()
match_queries = words.map(
    lambda text: _object([('"match"', _object([(f'"{FIELD}"', '"drill ' + text[1:])]))])
)
sizes = st.integers(min_value=1, max_value=50).map(str)
# rerank keys with values a client means (hostile text inside), then with anything at all
meant = {
    '"query"': words,
    '"window_size"': sizes,
    '"fields"': st.just(f'["{FIELD}"]'),
    '"template"': st.one_of(st.just('"{title} \\ud800"'), st.just('"{title}\\u0000"')),
    '"timeout_ms"': st.just("30000"),
    '"explain"': st.sampled_from(["true", "false"]),
    '"fusion"': st.sampled_from(['{"method": "linear"}', '{"method": "rrf"}']),
}


def _section(choices: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    entry = st.sampled_from(sorted(choices)).flatmap(
        lambda key: choices[key].map(lambda value: (key, value))
    )
    return st.lists(entry, max_size=3, unique_by=lambda item: item[0]).map(_object)


anything = {key: st.one_of(json_numbers, values) for key in meant}
rerank_sections = st.one_of(
    st.just("{}"), _section(meant), _section(meant), _section(anything), values
)
plausible_bodies = st.tuples(
    st.one_of(match_queries, match_queries, match_queries, values),
    rerank_sections,
    st.lists(st.tuples(st.sampled_from(['"size"', '"from"']), sizes | json_numbers), max_size=1),
).map(lambda parts: _object([('"query"', parts[0]), ('"rerank"', parts[1]), *parts[2]]))
hostile_bodies = st.lists(
    st.tuples(
        st.sampled_from(['"query"', '"rerank"', '"size"', '"from"', '"_source"', '"knn"']), values
    ),
    max_size=4,
).map(_object)
bodies = st.one_of(plausible_bodies, plausible_bodies, plausible_bodies, hostile_bodies)


@st.composite
def requests(draw: st.DrawFn, index: str) -> tuple[str, bytes, bool]:
    # never all indices: the node is shared with other work
    search = f"/{index}/_search"
    route = draw(st.sampled_from([search, search, "/_msearch", f"/{index}/_msearch"]))
    if route.endswith("_msearch"):
        named = st.just(f'{{"index": "{index}"}}')
        headers = st.one_of(named, named, values) if route == "/_msearch" else st.just("{}")
        pairs = draw(st.lists(st.tuples(headers, bodies), min_size=1, max_size=2))
        text = "".join(f"{head}\n{body}\n" for head, body in pairs)
        return route, text.encode("utf-8", "surrogatepass"), True
    return route, draw(bodies).encode("utf-8", "surrogatepass"), False


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_bodies_never_get_a_5xx_the_engine_did_not_cause(
    hostile_proxy: ProxyServer, hostile_index: str, data: st.DataObject
) -> None:
    route, body, ndjson = data.draw(requests(hostile_index))
    response = post(hostile_proxy, route, body, ndjson=ndjson)
    answer: Any = response.json()  # always JSON, whatever the status
    status = response.headers.get("x-rerank-status")
    event(f"{route.rsplit('/', 1)[-1]} {response.status_code} {status}")  # shown by statistics
    assert response.status_code in ACCEPTED, (body[:300], response.text[:500])
    assert response.status_code == 200 or "error" in answer, response.text[:500]


def test_the_sweep_writes_what_json_dumps_never_does() -> None:
    """The generator reaches lone surrogates and deep nesting (else the sweep proves little)."""
    lone = find(json_strings(), lambda text: "\\ud800" in text)
    nested = find(deep(), lambda text: len(text) > 4000)
    assert (json.loads(lone).count("\ud800"), len(nested) > 4000) == (lone.count("\\ud800"), True)


# -- the same sweep on the model routes (Cohere, TEI, OpenAI shapes) ---------------------------

MODEL_ROUTES = {
    "/v1/rerank": ('"query"', '"documents"'),
    "/v2/rerank": ('"query"', '"documents"'),
    "/rerank": ('"query"', '"texts"'),
    "/embed": (None, '"inputs"'),
    "/v1/embeddings": (None, '"input"'),
}
extra_keys = st.sampled_from(
    [
        '"top_n"',
        '"return_documents"',
        '"raw_scores"',
        '"truncate"',
        '"model"',
        '"max_tokens_per_doc"',
    ]
)


@st.composite
def model_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    route = draw(st.sampled_from(sorted(MODEL_ROUTES)))
    query_key, docs_key = MODEL_ROUTES[route]
    documents = st.one_of(st.lists(words, min_size=1, max_size=4).map(_array), words, values)
    items = [(docs_key, draw(documents))]
    if query_key is not None:
        items.append((query_key, draw(st.one_of(words, words, values))))
    items += draw(st.lists(st.tuples(extra_keys, st.one_of(json_numbers, values)), max_size=2))
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    return route, _object(items).encode("utf-8", "surrogatepass")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_model_route_bodies_never_get_a_5xx(
    hostile_proxy: ProxyServer, data: st.DataObject
) -> None:
    route, body = data.draw(model_requests())
    response = post(hostile_proxy, route, body)
    event(f"{route} {response.status_code}")
    assert response.status_code not in range(500, 600) or response.status_code in (502, 504), (
        body[:300],
        response.text[:500],
    )
    response.json()  # always JSON, whatever the status
