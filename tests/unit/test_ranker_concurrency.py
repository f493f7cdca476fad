"""Concurrent use of one Ranker (threads and asyncio) gives the sequential results."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bridge import Ranker, RerankRequest

WORDS = [
    "cordless",
    "drill",
    "battery",
    "saw",
    "blade",
    "garden",
    "hose",
    "white",
    "porcelain",
    "plate",
    "lamp",
    "led",
    "steel",
]


def _requests(count: int) -> list[RerankRequest]:
    rng = random.Random(11)
    requests = []
    for _ in range(count):
        passages = [
            {"id": i, "text": " ".join(rng.choices(WORDS, k=rng.randint(3, 30)))}
            for i in range(rng.randint(1, 8))
        ]
        requests.append(RerankRequest(" ".join(rng.choices(WORDS, k=2)), passages))
    return requests


@pytest.fixture(scope="module")
def ranker(nano_cross_encoder_dir: Path) -> Ranker:
    return Ranker(model_name=str(nano_cross_encoder_dir), max_length=64)


def _ranked(results: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["id"], round(r["score"], 6)) for r in results]


def test_eight_threads_by_fifty_calls_equal_sequential_results(ranker: Ranker) -> None:
    requests = _requests(50)
    sequential = [_ranked(ranker.rerank(r)) for r in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(lambda: [_ranked(ranker.rerank(r)) for r in requests]) for _ in range(8)
        ]
        concurrent = [f.result() for f in futures]
    assert concurrent == [sequential] * 8


def test_concurrent_arerank_calls_equal_sequential_results(ranker: Ranker) -> None:
    requests = _requests(20)
    sequential = [_ranked(ranker.rerank(r)) for r in requests]

    async def gather() -> list[list[tuple[int, float]]]:
        results = await asyncio.gather(*(ranker.arerank(r) for r in requests))
        return [_ranked(r) for r in results]

    assert asyncio.run(gather()) == sequential
