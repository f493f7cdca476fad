"""For any window, page size and offset, pages are slices of one fused order (no dups, no gaps)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import RerankConfig
from bridge.pipeline.answer import Outcome, build_answer
from bridge.pipeline.fuse import fuse, fused_order
from bridge.pipeline.plan import plan_search

MATCH = {"match": {"title": "query"}}


def engine_hits(n: int) -> list[dict[str, Any]]:
    return [
        {"_id": f"d{i}", "_score": float(n - i), "_source": {"title": f"t{i}"}} for i in range(n)
    ]


def page(
    hits: list[dict[str, Any]], model: dict[str, float], config: RerankConfig, frm: int, size: int
) -> list[str]:
    plan = plan_search({"query": MATCH, "from": frm, "size": size}, config)
    fetched = hits[: plan.fetch_size]  # a deterministic engine answering from=0,size=fetch
    response = {"hits": {"max_score": None, "hits": fetched}}
    window = fetched[: plan.window]
    outcome = Outcome(status="ok", model_scores=[model[h["_id"]] for h in window])
    return [h["_id"] for h in build_answer(response, plan, outcome)["hits"]["hits"]]


scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 60),
    window=st.integers(1, 30),
    size=st.integers(1, 15),
    method=st.sampled_from(["replace", "linear", "rrf", "rescore"]),
    data=st.data(),
)
def test_pages_concatenate_to_fused_window_then_engine_order(
    n: int, window: int, size: int, method: str, data: st.DataObject
) -> None:
    hits = engine_hits(n)
    model = {h["_id"]: data.draw(scores) for h in hits}
    config = RerankConfig.from_value(
        {"fields": ["title"], "window_size": window, "fusion": {"method": method}}
    )
    pages: list[str] = []
    for frm in range(0, n, size):
        pages.extend(page(hits, model, config, frm, size))

    top = hits[:window]
    fused = fuse([h["_score"] for h in top], [model[h["_id"]] for h in top], config.fusion)
    expected = [top[i]["_id"] for i in fused_order(fused)] + [h["_id"] for h in hits[window:]]
    assert pages == expected


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 40),
    window=st.integers(1, 30),
    frm=st.integers(0, 40),
    size=st.integers(1, 20),
    data=st.data(),
)
def test_any_page_is_the_matching_slice(
    n: int, window: int, frm: int, size: int, data: st.DataObject
) -> None:
    hits = engine_hits(n)
    model = {h["_id"]: data.draw(scores) for h in hits}
    config = RerankConfig.from_value({"fields": ["title"], "window_size": window})
    everything = page(hits, model, config, 0, n)
    assert page(hits, model, config, frm, size) == everything[frm : frm + size]


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 50),
    window=st.integers(1, 30),
    size=st.integers(1, 15),
    min_score=scores,
    data=st.data(),
)
def test_pages_with_min_score_are_slices_of_the_kept_reranked_order(
    n: int, window: int, size: int, min_score: float, data: st.DataObject
) -> None:
    hits = engine_hits(n)
    model = {h["_id"]: data.draw(scores) for h in hits}
    config = RerankConfig.from_value(
        {"fields": ["title"], "window_size": window, "min_score": min_score}
    )
    pages: list[str] = []
    for frm in range(0, n, size):
        pages.extend(page(hits, model, config, frm, size))

    top = hits[:window]
    ranked = sorted(top, key=lambda h: -model[h["_id"]])  # replace fusion, stable on ties
    kept = [h["_id"] for h in ranked if model[h["_id"]] >= min_score]
    assert pages == kept
