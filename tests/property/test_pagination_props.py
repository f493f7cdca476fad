"""For any window, page size and offset, pages are slices of the answered order.

``replace``, ``linear`` and ``rrf``: pages are slices of one fused order (window first, then the
engine's order; no dups, no gaps). ``rescore``: each page is the slice of the list Elasticsearch's
rescore builds from the hits that page fetches (the window rescored, the rest at ``query_weight x
engine score``, all sorted by score, ties in engine order), computed here independently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
WINDOW_FIRST = ["replace", "linear", "rrf"]
SCORE_MODES = ["total", "multiply", "avg", "max", "min"]


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 60),
    window=st.integers(1, 30),
    size=st.integers(1, 15),
    method=st.sampled_from(WINDOW_FIRST),
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
    method=st.sampled_from(WINDOW_FIRST),
    data=st.data(),
)
def test_any_page_is_the_matching_slice(
    n: int, window: int, frm: int, size: int, method: str, data: st.DataObject
) -> None:
    hits = engine_hits(n)
    model = {h["_id"]: data.draw(scores) for h in hits}
    config = RerankConfig.from_value(
        {"fields": ["title"], "window_size": window, "fusion": {"method": method}}
    )
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


def es_rescored_ids(
    hits: list[dict[str, Any]],
    model: dict[str, float],
    window: int,
    qw: float,
    rw: float,
    mode: str,
) -> list[str]:
    """Elasticsearch's QueryRescorer on one shard, in its float32 arithmetic."""
    f32 = np.float32
    combine = {
        "total": lambda a, b: a + b,
        "multiply": lambda a, b: a * b,
        "avg": lambda a, b: (a + b) / 2,
        "max": max,
        "min": min,
    }[mode]
    keyed = []
    for rank, hit in enumerate(hits):
        first = f32(hit["_score"]) * f32(qw)
        score = combine(first, f32(model[hit["_id"]]) * f32(rw)) if rank < window else first
        keyed.append((-score, rank, hit["_id"]))
    return [hit_id for _, _, hit_id in sorted(keyed)]


def varied_engine_hits(engine_scores: list[float]) -> list[dict[str, Any]]:
    """Engine order: score descending, ties as the engine returned them (input order)."""
    ranked = sorted(engine_scores, reverse=True)
    return [
        {"_id": f"d{i}", "_score": s, "_source": {"title": f"t{i}"}} for i, s in enumerate(ranked)
    ]


engine_score = st.sampled_from([0.5, 1.0, 2.0, 3.25]) | st.floats(0.0, 30.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    engine_scores=st.lists(engine_score, max_size=60),
    window=st.integers(1, 30),
    frm=st.integers(0, 60),
    size=st.integers(1, 15),
    mode=st.sampled_from(SCORE_MODES),
    qw=st.sampled_from([0.0, 0.7, 1.0, 2.0]) | st.floats(0.0, 5.0),
    rw=st.sampled_from([0.0, 1.0, 1.3, 10.0]) | st.floats(0.0, 50.0),
    data=st.data(),
)
def test_rescore_pages_are_slices_of_elasticsearchs_rescored_list(
    engine_scores: list[float],
    window: int,
    frm: int,
    size: int,
    mode: str,
    qw: float,
    rw: float,
    data: st.DataObject,
) -> None:
    hits = varied_engine_hits(engine_scores)
    model = {h["_id"]: data.draw(scores | st.sampled_from([0.0, 0.5])) for h in hits}
    config = RerankConfig.from_value(
        {
            "fields": ["title"],
            "window_size": window,
            "fusion": {
                "method": "rescore",
                "score_mode": mode,
                "query_weight": qw,
                "rescore_query_weight": rw,
            },
        }
    )
    fetched = hits[: max(window, frm + size)]  # what the engine returns for this page
    expected = es_rescored_ids(fetched, model, window, qw, rw, mode)[frm : frm + size]
    assert page(hits, model, config, frm, size) == expected


@settings(max_examples=100, deadline=None)
@given(
    engine_scores=st.lists(engine_score, min_size=1, max_size=40),
    window=st.integers(1, 30),
    mode=st.sampled_from(SCORE_MODES),
    data=st.data(),
)
def test_rescore_answer_scores_are_the_sorted_rescored_scores(
    engine_scores: list[float], window: int, mode: str, data: st.DataObject
) -> None:
    """Every returned _score (past the window too) is rescore's, and the list is sorted by it."""
    hits = varied_engine_hits(engine_scores)
    model = {h["_id"]: data.draw(scores) for h in hits}
    fusion = {"method": "rescore", "score_mode": mode, "query_weight": 0.7}
    config = RerankConfig.from_value({"fields": ["title"], "window_size": window, "fusion": fusion})
    plan = plan_search({"query": MATCH, "from": 0, "size": len(hits)}, config)
    response = {"hits": {"max_score": hits[0]["_score"], "hits": hits}}
    outcome = Outcome(status="ok", model_scores=[model[h["_id"]] for h in hits[:window]])
    answer = build_answer(response, plan, outcome)["hits"]
    got = answer["hits"]
    assert [h["_id"] for h in got] == es_rescored_ids(hits, model, window, 0.7, 1.0, mode)
    answered = [h["_score"] for h in got]
    assert answered == sorted(answered, reverse=True)
    assert answer["max_score"] == answered[0]
    by_id = {h["_id"]: h["_score"] for h in hits}
    for rank, hit in enumerate(hits[window:], start=window):
        mine = next(h for h in got if h["_id"] == hit["_id"])
        assert np.float32(mine["_score"]) == np.float32(by_id[hit["_id"]]) * np.float32(0.7), rank
