"""The rerank flow driven by hand, effect by effect, with no I/O at all.

Each test sends results (or throws exceptions) into the generator exactly as a door would, and
checks what it yields next or how it ends.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import RerankConfig
from bridge.errors import ConfigError, ModelError, RerankTimeout, UpstreamError
from bridge.pipeline.flow import Effect, Embed, Flow, Score, Search, SearchRequest, rerank_flow

ENGINE: dict[str, Any] = {
    "hits": {
        "max_score": 3.0,
        "hits": [
            {"_id": str(i), "_score": 3.0 - i, "_source": {"title": f"title {i}"}} for i in range(3)
        ],
    }
}
KNN_BODY: dict[str, Any] = {
    "knn": {"field": "embedding", "query_text": "drill", "k": 3, "num_candidates": 10},
    "size": 3,
}
MATCH_BODY: dict[str, Any] = {"query": {"match": {"title": "title"}}, "size": 3}


def request(
    body: dict[str, Any] = MATCH_BODY, section: object = None, **config: Any
) -> SearchRequest:
    base = {"fields": ["title"], "window_size": 3, "timeout_ms": 200, "explain": True}
    return SearchRequest(body, RerankConfig.from_value({**base, **config}), section=section)


def pending(flow: Flow, kind: type[Effect]) -> Any:
    """The effect the flow waits for, which must be a ``kind``."""
    assert isinstance(flow.effect, kind), f"flow waits for {flow.effect!r}"
    return flow.effect


def at_score(**config: Any) -> Flow:
    """A flow that searched and now waits for its scores."""
    flow = Flow(rerank_flow(request(**config)))
    flow.send(ENGINE)
    return flow


# -- the effects, in order --------------------------------------------------------------------


def test_first_effect_is_the_engine_search_with_the_widened_body() -> None:
    flow = Flow(rerank_flow(request({**MATCH_BODY, "size": 2}, window_size=3)))
    assert pending(flow, Search).body["size"] == 3


def test_knn_query_text_is_embedded_before_the_search() -> None:
    effect = Flow(rerank_flow(request(KNN_BODY, embedding_model="bi"))).effect
    assert effect == Embed(model="bi", texts=("drill",))


def test_vectors_sent_back_replace_the_query_text_in_the_search() -> None:
    flow = Flow(rerank_flow(request(KNN_BODY)))
    flow.send([[0.5, 0.25]])
    assert pending(flow, Search).body["knn"]["query_vector"] == [0.5, 0.25]


def test_after_the_search_it_asks_for_scores_of_the_window() -> None:
    effect = at_score(model="m", max_length=64, timeout_ms=None).effect
    assert effect == Score(
        model="m",
        max_length=64,
        query="title",
        passages=("title 0", "title 1", "title 2"),
        timeout_s=None,
    )


def test_score_budget_is_what_is_left_of_timeout_ms() -> None:
    budget = pending(at_score(timeout_ms=200), Score).timeout_s
    assert 0 < budget <= 0.2


def test_no_timeout_means_no_budget() -> None:
    assert pending(at_score(timeout_ms=None), Score).timeout_s is None


def test_scores_sent_back_finish_with_the_reranked_answer() -> None:
    flow = at_score()
    flow.send([0.1, 0.2, 0.9])
    assert [h["_id"] for h in flow.done().answer["hits"]["hits"]] == ["2", "1", "0"]


def test_explain_timings_hold_engine_texts_model_and_total() -> None:
    flow = at_score()
    flow.send([0.1, 0.2, 0.9])
    assert set(flow.done().answer["rerank"]["timings_ms"]) == {"engine", "texts", "model", "total"}


def test_no_hits_finishes_without_scoring() -> None:
    flow = Flow(rerank_flow(request()))
    flow.send({"hits": {"max_score": None, "hits": []}})
    assert (flow.effect, flow.done().outcome.status) == (None, "empty")


def test_size_zero_searches_and_finishes_without_scoring() -> None:
    flow = Flow(rerank_flow(request({**MATCH_BODY, "size": 0})))
    flow.send(ENGINE)
    assert (flow.effect, flow.done().outcome.status) == (None, "skipped")


def test_planning_errors_raise_before_any_effect() -> None:
    with pytest.raises(ConfigError):
        Flow(rerank_flow(request({"query": {"match_all": {}}})))


# -- an exception thrown in at each yield point ------------------------------------------------


def test_embed_failure_is_a_model_error() -> None:
    flow = Flow(rerank_flow(request(KNN_BODY)))
    with pytest.raises(ModelError, match="embedding knn query_text failed"):
        flow.throw(RuntimeError("no session"))


def test_embed_model_error_of_a_model_the_request_named_is_a_config_error() -> None:
    flow = Flow(rerank_flow(request(KNN_BODY, section={"embedding_model": "cross"})))
    with pytest.raises(ConfigError) as caught:
        flow.throw(ModelError("cross is a cross-encoder"))
    assert caught.value.field == "rerank.embedding_model"


def test_embed_model_error_of_the_default_model_stays_a_model_error() -> None:
    flow = Flow(rerank_flow(request(KNN_BODY, section=True)))
    with pytest.raises(ModelError, match="cannot load"):
        flow.throw(ModelError("cannot load"))


def test_search_failure_propagates_untouched() -> None:
    flow = Flow(rerank_flow(request()))
    with pytest.raises(UpstreamError, match="engine down"):
        flow.throw(UpstreamError("engine down"))


def test_score_failure_fails_open_in_engine_order() -> None:
    flow = at_score()
    flow.throw(RuntimeError("session exploded"))
    done = flow.done()
    assert (done.outcome.status, [h["_id"] for h in done.answer["hits"]["hits"]]) == (
        "model_error",
        ["0", "1", "2"],
    )


def test_score_failure_raises_with_on_failure_error() -> None:
    flow = at_score(on_failure="error")
    with pytest.raises(ModelError, match="session exploded"):
        flow.throw(RuntimeError("session exploded"))


@pytest.mark.parametrize("timeout", [TimeoutError(), RerankTimeout("late")])
def test_score_timeout_fails_open(timeout: Exception) -> None:
    flow = at_score(timeout_ms=200)
    flow.throw(timeout)
    assert (flow.done().outcome.status, flow.done().outcome.error) == (
        "timeout",
        "reranking exceeded timeout_ms=200",
    )


def test_score_timeout_raises_rerank_timeout_with_on_failure_error() -> None:
    flow = at_score(on_failure="error")
    with pytest.raises(RerankTimeout):
        flow.throw(TimeoutError())


def test_wrong_number_of_scores_fails_open() -> None:
    flow = at_score()
    flow.send([1.0])
    assert flow.done().outcome.status == "model_error"


def test_a_flow_still_waiting_has_no_result() -> None:
    with pytest.raises(RuntimeError, match="still waiting"):
        at_score().done()
