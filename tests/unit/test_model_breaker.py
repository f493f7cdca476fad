"""The model breaker: a model that cannot load costs its callers nothing after the first failure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import DownloadError, ModelError, ModelNotFoundError, ModelUnavailableError
from bridge.scoring import SharedScorers
from bridge.scoring.availability import ModelBreaker


class FlakyLoad:
    """A load that fails ``failures`` times (DownloadError), then returns "scorer"."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise DownloadError("cannot reach http://127.0.0.1:9/m.zip: refused")
        return "scorer"


@pytest.fixture
def breaker() -> Iterator[ModelBreaker]:
    made = ModelBreaker(first_retry_s=60.0)  # no retry within a test unless it asks for one
    yield made
    made.stop()


def test_the_first_caller_gets_the_real_error(breaker: ModelBreaker) -> None:
    with pytest.raises(DownloadError):
        breaker.load("m", FlakyLoad(failures=9))


def test_later_callers_fail_at_once_without_a_load_attempt(breaker: ModelBreaker) -> None:
    load = FlakyLoad(failures=9)
    with pytest.raises(DownloadError):
        breaker.load("m", load)
    for _ in range(20):
        with pytest.raises(ModelUnavailableError):
            breaker.load("m", load)
    assert load.calls == 1


def test_concurrent_callers_share_one_attempt(breaker: ModelBreaker) -> None:
    slow_failures: list[int] = []

    def slow_load() -> str:
        slow_failures.append(1)
        time.sleep(0.2)
        raise DownloadError("refused")

    errors: list[type[BaseException]] = []

    def call() -> None:
        try:
            breaker.load("m", slow_load)
        except Exception as exc:
            errors.append(type(exc))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(slow_failures), sorted(e.__name__ for e in errors).count("DownloadError")) == (1, 1)


def test_the_background_retry_loads_the_model_with_backoff() -> None:
    breaker = ModelBreaker(first_retry_s=0.05, max_retry_s=0.2)
    load = FlakyLoad(failures=3)  # the call, then two background retries fail; the third loads
    try:
        with pytest.raises(DownloadError):
            breaker.load("m", load)
        deadline = time.monotonic() + 10
        while breaker.is_open("m") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (breaker.load("m", load), load.calls) == ("scorer", 5)
    finally:
        breaker.stop()


def test_one_warning_per_model_however_many_calls(
    breaker: ModelBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    load = FlakyLoad(failures=99)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        for model in ("a", "b"):
            for _ in range(10):
                with pytest.raises((DownloadError, ModelUnavailableError)):
                    breaker.load(model, load)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [message.split(" ")[1] for message in warned] == ["a", "b"]


def test_the_warning_gives_the_fix_for_a_known_model(
    breaker: ModelBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge"), pytest.raises(DownloadError):
        breaker.load("ms-marco-TinyBERT-L-2-v2", FlakyLoad(failures=1))
    message = caplog.records[-1].getMessage()
    assert ("RERANK_BRIDGE_MODEL_URL" in message, "--model /path" in message) == (True, True)


def test_status_says_why_and_when_the_next_retry_is(breaker: ModelBreaker) -> None:
    with pytest.raises(DownloadError):
        breaker.load("ms-marco-TinyBERT-L-2-v2", FlakyLoad(failures=1))
    state = breaker.status()["ms-marco-TinyBERT-L-2-v2"]
    assert (state["state"], state["failures"], "refused" in state["reason"]) == (
        "unavailable",
        1,
        True,
    )


def test_shared_scorers_pay_one_attempt_for_a_missing_model(tmp_path: Path) -> None:
    scorers = SharedScorers()
    missing = str(tmp_path / "no-model-here")
    try:
        with pytest.raises(ModelNotFoundError):
            scorers.get(missing)
        with pytest.raises(ModelUnavailableError):
            scorers.get(missing)
        assert scorers.breaker.attempts == {missing: 1}
    finally:
        scorers.breaker.stop()


def test_shared_scorers_load_a_model_folder_that_appears_later(
    tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    import shutil

    scorers = SharedScorers()
    scorers.breaker.first_retry_s = 0.1
    scorers.breaker.max_retry_s = 0.5  # a retry may meet the folder half copied: keep trying
    folder = tmp_path / "model"
    try:
        with pytest.raises(ModelNotFoundError):
            scorers.get(str(folder))
        shutil.copytree(nano_cross_encoder_dir, folder)
        deadline = time.monotonic() + 30
        while scorers.breaker.is_open(str(folder)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(scorers.get(str(folder)).score("drill", ["cordless drill"])) == 1
    finally:
        scorers.breaker.stop()


def _broken_copy(good: Path, cache: Path, name: str) -> Path:
    """``name``'s folder copied into ``cache`` with its ONNX graph replaced by garbage."""
    import shutil

    folder = cache / name
    shutil.copytree(good / name, folder, ignore=shutil.ignore_patterns("*.optimized-*"))
    for graph in folder.glob("*.onnx"):
        graph.write_bytes(b"not an onnx graph")
    return folder


def test_one_name_in_two_cache_folders_is_two_models(
    tmp_path: Path, flashrank_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    name = "ms-marco-TinyBERT-L-2-v2"
    broken = tmp_path / "broken-cache"
    _broken_copy(flashrank_cache_dir, broken, name)
    scorers = SharedScorers()
    try:
        with pytest.raises(ModelError):
            scorers.get(name, cache_dir=broken)
        with pytest.raises(ModelUnavailableError):  # the broken copy stays refused...
            scorers.get(name, cache_dir=broken)
        # ...but the same name in another cache folder is another model: it loads
        good = scorers.get(name, cache_dir=flashrank_cache_dir)
        assert len(good.score("drill", ["cordless drill", "garden hose"])) == 2
        where = {c: scorers.where(name, c) for c in (broken, flashrank_cache_dir)}
        assert (
            scorers.breaker.is_open(name, where=where[broken]),
            scorers.breaker.is_open(name, where=where[flashrank_cache_dir]),
            scorers.breaker.status()[name]["where"],
        ) == (True, False, str((broken / name).resolve()))
    finally:
        scorers.breaker.stop()


def test_the_proxy_pools_guard_one_name_per_cache_folder(
    tmp_path: Path, flashrank_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from bridge.proxy.model_pool import ModelPool
    from bridge.proxy.prometheus import ProxyMetrics
    from bridge.proxy.settings import BatchingSettings, ScorerSettings
    from bridge.scoring import shared_scorers

    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    name = "ms-marco-TinyBERT-L-2-v2"
    broken = tmp_path / "broken-cache"
    _broken_copy(flashrank_cache_dir, broken, name)
    pools = {
        label: ModelPool(
            ScorerSettings(cache_dir=str(cache)), BatchingSettings(enabled=False), ProxyMetrics()
        )
        for label, cache in (("broken", broken), ("good", flashrank_cache_dir))
    }

    async def run() -> tuple[str, str, list[float]]:
        try:
            for pool in pools.values():
                await pool.preload([name])  # the broken one fails: the proxy stays up
            batcher = await pools["good"].batcher(name)
            scores = await batcher.score([("drill", "cordless drill"), ("drill", "garden hose")])
            with pytest.raises(ModelUnavailableError):
                await pools["broken"].batcher(name)
            states = {label: pool.status()[name]["state"] for label, pool in pools.items()}
            return states["broken"], states["good"], list(scores)
        finally:
            for pool in pools.values():
                await pool.aclose()

    try:
        broken_state, good_state, scores = asyncio.run(run())
    finally:
        shared_scorers.clear()  # the scorers loaded from tmp_path are this test's
    assert (broken_state, good_state, len(scores)) == ("unavailable", "loaded", 2)
