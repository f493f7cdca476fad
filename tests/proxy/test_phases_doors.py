"""Phased reranking through the three doors (sync wrapper, async wrapper, proxy `_search` and
`_msearch`) against a real Elasticsearch node: the same order and phase reports from every door,
fail-open per phase, and one `timeout_ms` covering every phase.

Phase 1 is the all-MiniLM-L6-v2 bi-encoder, phase 2 the nano cross-encoder (both real ONNX
models). Faults are injected by wrapping a real model: ``broken`` raises, ``slow-N`` sleeps N ms
before scoring for real.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from bridge.errors import ModelError
from bridge.scoring import load_scorer
from bridge.search import AsyncRerankingSearch, RerankingSearch
from tests.proxy.conftest import StartProxy
from tests.proxy.test_rerank_routes import QUERY, make_index

pytestmark = pytest.mark.integration

BODY = {"query": QUERY, "size": 5}


class Faulty:
    """A real model that fails (``broken``) or first sleeps (``slow-<ms>``)."""

    def __init__(self, real: Any, name: str) -> None:
        self.real, self.name = real, name
        self.max_length = real.max_length
        self.cache = None

    def _fault(self) -> None:
        if self.name == "broken":
            raise ModelError("injected model failure")
        if self.name.startswith("slow-"):
            time.sleep(int(self.name.removeprefix("slow-")) / 1000)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self._fault()
        return list(self.real.score(query, passages))

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self._fault()
        return list(self.real.score_pairs(pairs))


class Models:
    """Real models by directory; any other name is a fault wrapped around the cross-encoder.

    Serves the wrappers (``get``) and the proxy's model pool (called as its loader)."""

    def __init__(self, cross: Path) -> None:
        self.cross = str(cross)
        self.loaded: dict[str, Any] = {}

    def get(self, model: str, *, max_length: int | None = None) -> Any:
        if model not in self.loaded:
            if Path(model).is_dir():
                self.loaded[model] = load_scorer(model, max_length=max_length)
            else:
                self.loaded[model] = Faulty(self.get(self.cross), model)
        return self.loaded[model]

    def __call__(self, model: str, max_length: int | None) -> Any:
        return self.get(model, max_length=max_length)


@pytest.fixture(scope="module")
def index(es_upstream: str) -> Iterator[str]:
    name = make_index(es_upstream)
    yield name
    httpx.delete(f"{es_upstream}/{name}")


@pytest.fixture
def models(nano_cross_encoder_dir: Path, bi_encoder_dir: Path) -> Models:
    found = Models(nano_cross_encoder_dir)
    for model in (nano_cross_encoder_dir, bi_encoder_dir):  # loading is not part of the budget
        found.get(str(model))
    return found


def rerank(first: str, second: str, *, timeout_ms: int | None = None) -> dict[str, Any]:
    return {
        "phases": [
            {"model": first, "window_size": 5, "fusion": "linear"},
            {"model": second, "window_size": 2},
        ],
        "fields": ["title"],
        "explain": True,
        "timeout_ms": timeout_ms,
    }


def through_doors(
    start_proxy: StartProxy, es_upstream: str, index: str, models: Models, section: dict[str, Any]
) -> dict[str, Any]:
    """The same reranked search through every door: door name -> answer body."""
    with Elasticsearch(es_upstream) as client, RerankingSearch(client, scorers=models) as door:
        sync_answer = door.search(index=index, body=BODY, rerank=section).body

    async def through_async() -> Any:
        async with AsyncElasticsearch(es_upstream) as client:
            door = AsyncRerankingSearch(client, scorers=models)
            return (await door.search(index=index, body=BODY, rerank=section)).body

    names = [p["model"] for p in section["phases"]] + ["all-MiniLM-L6-v2"]  # + embedding_model
    proxy = start_proxy(es_upstream, loader=models, scorer={"allowed_models": names})
    search = httpx.post(
        f"{proxy.url}/{index}/_search", json={**BODY, "rerank": section}, timeout=60
    ).json()
    lines = [{"index": index}, {**BODY, "rerank": section}] * 2
    multi_answer = httpx.post(
        f"{proxy.url}/_msearch",
        content="\n".join(json.dumps(line) for line in lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    ).json()
    assert "responses" in multi_answer, multi_answer
    multi = multi_answer["responses"]
    return {
        "sync": sync_answer,
        "async": asyncio.run(through_async()),
        "proxy _search": search,
        "proxy _msearch[0]": multi[0],
        "proxy _msearch[1]": multi[1],
    }


def ids(answer: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in answer["hits"]["hits"]]


def phase_statuses(answer: dict[str, Any]) -> list[str]:
    return [phase["status"] for phase in answer["rerank"]["phases"]]


def explain_keys(answer: dict[str, Any]) -> tuple[list[str], list[str], list[list[str]]]:
    summary = answer["rerank"]
    phases = [sorted(p) for p in summary["phases"]]
    return sorted(summary), sorted(summary["timings_ms"]), phases


def test_phases_give_the_same_order_and_reports_through_every_door(
    start_proxy: StartProxy,
    es_upstream: str,
    index: str,
    models: Models,
    bi_encoder_dir: Path,
    nano_cross_encoder_dir: Path,
) -> None:
    section = rerank(str(bi_encoder_dir), str(nano_cross_encoder_dir))
    answers = through_doors(start_proxy, es_upstream, index, models, section)
    sync = answers["sync"]
    assert phase_statuses(sync) == ["reranked", "reranked"]
    assert [p["reranked"] for p in sync["rerank"]["phases"]] == [5, 2]
    # the top two hits carry both phases' scores; the next three only the first phase's
    per_hit = [[s is not None for s in h["_rerank"]["phases"]] for h in sync["hits"]["hits"]]
    assert per_hit == [[True, True]] * 2 + [[True, False]] * 3
    for door, answer in answers.items():
        assert (door, ids(answer)) == (door, ids(sync))
        assert (door, explain_keys(answer)) == (door, explain_keys(sync))
        assert (door, phase_statuses(answer)) == (door, ["reranked", "reranked"])


def test_a_failing_phase_leaves_the_previous_phases_order_through_every_door(
    start_proxy: StartProxy, es_upstream: str, index: str, models: Models, bi_encoder_dir: Path
) -> None:
    reference = through_doors(
        start_proxy,
        es_upstream,
        index,
        models,
        {
            **rerank(str(bi_encoder_dir), "x"),
            "phases": [{"model": str(bi_encoder_dir), "window_size": 5, "fusion": "linear"}],
        },
    )["sync"]  # the first phase alone
    answers = through_doors(
        start_proxy, es_upstream, index, models, rerank(str(bi_encoder_dir), "broken")
    )
    for door, answer in answers.items():
        summary = answer["rerank"]
        assert (door, ids(answer), summary["status"], phase_statuses(answer)) == (
            door,
            ids(reference),
            "partial",
            ["reranked", "model_error"],
        )
        assert "injected model failure" in summary["phases"][1]["error"]


def test_one_timeout_covers_every_phase_through_every_door(
    start_proxy: StartProxy, es_upstream: str, index: str, models: Models
) -> None:
    # each phase alone (150 ms) fits in 250 ms; both do not: the second one times out and the
    # first phase's order stands
    answers = through_doors(
        start_proxy, es_upstream, index, models, rerank("slow-150", "slow-151", timeout_ms=250)
    )
    alone = through_doors(
        start_proxy,
        es_upstream,
        index,
        models,
        {
            **rerank("slow-150", "x"),
            "phases": [{"model": "slow-150", "window_size": 5, "fusion": "linear"}],
        },
    )["sync"]
    for door, answer in answers.items():
        assert (door, ids(answer), phase_statuses(answer)) == (
            door,
            ids(alone),
            ["reranked", "timeout"],
        )
        assert answer["rerank"]["timings_ms"]["total"] < 1000
