"""The byte scan that lets a search skip the JSON parse: it may only ever say "certainly no
`rerank` key"; every body with the key, at any depth and however it is escaped, must be parsed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.proxy.http_io import may_name_rerank

KEYS = st.sampled_from(["query", "rerank", "size", "title", "Rerank", "rerank_x", "re\u00e9"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12), KEYS)
DOCS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), inner)
    ),
    max_leaves=20,
)


def has_key(value: Any) -> bool:
    if isinstance(value, dict):
        return "rerank" in value or any(has_key(v) for v in value.values())
    if isinstance(value, list):
        return any(has_key(v) for v in value)
    return False


def escaped(key: str, positions: set[int]) -> str:
    return "".join(
        f"\\u{ord(c):04{'x' if i % 2 else 'X'}}" if i in positions else c for i, c in enumerate(key)
    )


@given(DOCS, st.booleans())
def test_a_body_said_to_lack_the_key_lacks_it(doc: Any, ascii_only: bool) -> None:
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    if not may_name_rerank(body):
        assert not has_key(json.loads(body))


@given(DOCS, st.sets(st.integers(0, 5)))
def test_a_rerank_key_is_always_seen_however_escaped(doc: Any, positions: set[int]) -> None:
    key = escaped("rerank", positions)
    body = f'{{"query": {json.dumps(doc)}, "{key}": {{}}}}'.encode()
    assert json.loads(body)["rerank"] == {}
    assert may_name_rerank(body)


def test_plain_search_bodies_skip_the_parse() -> None:
    assert not may_name_rerank(b'{"query":{"match":{"title":"cordless drill"}},"size":10}')
    # the word in a longer string, or escaped quotes around it inside a string value
    assert not may_name_rerank(b'{"query":{"match":{"title":"how to rerank \\"rerank\\" x"}}}')
    # non-ASCII text escaped by the client's encoder (no escape that could spell the key)
    assert not may_name_rerank(b'{"query":{"match":{"title":"caf\\u00e9 na\\u00efve"}}}')


def test_rerank_as_a_value_is_left_to_the_parse() -> None:
    assert may_name_rerank(b'{"query":{"match":{"title":"rerank"}}}')
    assert may_name_rerank(b'{"q":"\\u0072"}')
