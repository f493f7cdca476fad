"""bridge.Ranker: FlashRank's surface, results as new dicts, typed errors for bad passages."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest

from bridge import InputError, ModelError, Ranker, RerankRequest

QUERY = "cordless drill"
PASSAGES = [
    {"id": 1, "text": "white porcelain dinner plates", "meta": {"source": "a"}},
    {"id": 2, "text": "DEWALT 20V MAX cordless drill kit", "meta": {"source": "b"}, "price": 99},
    {"id": 3, "text": "garden hose 50 ft", "meta": {"source": "c"}},
    {"id": 4, "text": "Ryobi 18V cordless compact drill driver", "meta": {"source": "d"}},
]


@pytest.fixture(scope="module")
def ranker(nano_cross_encoder_dir: Path) -> Ranker:
    return Ranker(model_name=str(nano_cross_encoder_dir), max_length=128)


@pytest.fixture(scope="module")
def trained_ranker(
    homedepot_cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Ranker:
    return Ranker(
        model_name=str(homedepot_cross_encoder_dir),
        cache_dir=tmp_path_factory.mktemp("graphs"),
        max_length=128,
    )


def test_rerank_sorts_by_descending_score(ranker: Ranker) -> None:
    scores = [r["score"] for r in ranker.rerank(RerankRequest(QUERY, PASSAGES))]
    assert scores == sorted(scores, reverse=True)


def test_rerank_returns_every_passage_once(ranker: Ranker) -> None:
    results = ranker.rerank(RerankRequest(QUERY, PASSAGES))
    assert sorted(r["id"] for r in results) == [1, 2, 3, 4]


def test_rerank_keeps_every_key_and_adds_a_float_score(ranker: Ranker) -> None:
    result = next(r for r in ranker.rerank(RerankRequest(QUERY, PASSAGES)) if r["id"] == 2)
    assert (set(result), type(result["score"])) == ({"id", "text", "meta", "price", "score"}, float)


def test_rerank_does_not_mutate_the_callers_passages(ranker: Ranker) -> None:
    passages = copy.deepcopy(PASSAGES)
    ranker.rerank(RerankRequest(QUERY, passages))
    assert passages == PASSAGES


def test_rerank_returns_new_dicts(ranker: Ranker) -> None:
    results = ranker.rerank(RerankRequest(QUERY, PASSAGES))
    assert not any(r is p for r in results for p in PASSAGES)


def test_trained_model_puts_a_drill_first(trained_ranker: Ranker) -> None:
    assert trained_ranker.rerank(RerankRequest(QUERY, PASSAGES))[0]["id"] in {2, 4}


def test_top_n_keeps_the_best_n(ranker: Ranker) -> None:
    full = ranker.rerank(RerankRequest(QUERY, PASSAGES))
    assert ranker.rerank(RerankRequest(QUERY, PASSAGES), top_n=2) == full[:2]


def test_empty_passages_give_an_empty_list(ranker: Ranker) -> None:
    assert ranker.rerank(RerankRequest(QUERY, [])) == []


def test_a_request_without_passages_gives_an_empty_list(ranker: Ranker) -> None:
    assert ranker.rerank(RerankRequest(query=QUERY)) == []


def test_a_passage_without_text_is_an_input_error_naming_its_index(ranker: Ranker) -> None:
    with pytest.raises(InputError, match=r"passage \[1\]") as info:
        ranker.rerank(RerankRequest(QUERY, [{"text": "ok"}, {"id": 2}]))
    assert info.value.index == 1


def test_a_non_string_text_is_an_input_error_naming_its_index(ranker: Ranker) -> None:
    with pytest.raises(InputError, match=r"passage \[2\]"):
        ranker.rerank(RerankRequest(QUERY, [{"text": "a"}, {"text": "b"}, {"text": None}]))


def test_a_passage_that_is_not_a_dict_is_an_input_error(ranker: Ranker) -> None:
    with pytest.raises(InputError, match=r"passage \[0\]"):
        ranker.rerank(RerankRequest(QUERY, ["just text"]))  # type: ignore[list-item]


def test_a_missing_query_is_an_input_error(ranker: Ranker) -> None:
    with pytest.raises(InputError):
        ranker.rerank(RerankRequest(None, PASSAGES))


def test_arerank_equals_rerank(ranker: Ranker) -> None:
    request = RerankRequest(QUERY, PASSAGES)
    assert asyncio.run(ranker.arerank(request)) == ranker.rerank(request)


def test_score_pairs_follows_the_rerank_scores(ranker: Ranker) -> None:
    by_id = {r["id"]: r["score"] for r in ranker.rerank(RerankRequest(QUERY, PASSAGES))}
    pairs = [(QUERY, p["text"]) for p in PASSAGES]
    assert ranker.score_pairs(pairs) == pytest.approx([by_id[p["id"]] for p in PASSAGES], abs=1e-6)


def test_embed_on_a_cross_encoder_is_a_model_error(ranker: Ranker) -> None:
    with pytest.raises(ModelError):
        ranker.embed(["drill"])


def test_embed_on_a_bi_encoder_returns_one_row_per_text(bi_encoder_dir: Path) -> None:
    assert Ranker(model_name=str(bi_encoder_dir)).embed(["a", "b", "c"]).shape[0] == 3


def test_rankers_over_the_same_model_share_one_scorer(nano_cross_encoder_dir: Path) -> None:
    first = Ranker(model_name=str(nano_cross_encoder_dir), max_length=128)
    second = Ranker(model_name=str(nano_cross_encoder_dir), max_length=128)
    assert first.scorer is second.scorer
