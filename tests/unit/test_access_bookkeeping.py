"""The access record and the request metrics at a fraction of their old cost, same output.

/metrics: ``RequestTally`` and ``PlainCounter`` export exactly what prometheus_client's
``Counter`` / ``Histogram`` export for the same observations (same bytes from generate_latest).
The access line: ``access_line`` is the JSON encoder's text, ``AccessLineHandler`` writes what a
``StreamHandler`` with serve's format writes, later and in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bridge.cli.serve import log_config
from bridge.proxy import access
from bridge.proxy.access import LINE_FORMAT, AccessLineHandler, AccessLog, access_line
from bridge.proxy.prometheus import _LATENCY_BUCKETS, PlainCounter, ProxyMetrics, RequestTally

NOW = 1_796_000_000.25


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``_created`` series born at the same instant, in both implementations."""
    monkeypatch.setattr(time, "time", lambda: NOW)


def _observations(seed: int, n: int) -> list[tuple[str, str, int, float]]:
    rng = random.Random(seed)
    routes = ["_search", "passthrough", "/_bridge/health", "_msearch", "/v1/rerank"]
    out = []
    for _ in range(n):
        # values on the bucket bounds too (a bound is inclusive), and past the last one
        elapsed = rng.choice([*_LATENCY_BUCKETS, 0.0, 11.0, rng.random() * 0.05, rng.random()])
        out.append(
            (rng.choice(routes), rng.choice(["GET", "POST"]), rng.choice([200, 404, 502]), elapsed)
        )
    return out


@pytest.mark.parametrize("created", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_request_tally_exports_what_a_counter_and_a_histogram_export(
    frozen_clock: None, monkeypatch: pytest.MonkeyPatch, seed: int, created: bool
) -> None:
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", created)
    old = CollectorRegistry()
    requests = Counter(
        "rerank_bridge_requests",
        "HTTP requests handled by the proxy",
        ["route", "method", "status"],
        registry=old,
    )
    seconds = Histogram(
        "rerank_bridge_request_seconds",
        "Wall time of proxied requests",
        ["route"],
        buckets=_LATENCY_BUCKETS,
        registry=old,
    )
    new = CollectorRegistry()
    tally = RequestTally(_LATENCY_BUCKETS)
    new.register(tally)
    for route, method, status, elapsed in _observations(seed, 3000):
        requests.labels(route, method, str(status)).inc()
        seconds.labels(route).observe(elapsed)
        tally.add(route, method, status, elapsed)
    expected = generate_latest(old)
    assert b'le="+Inf"' in expected
    assert b"rerank_bridge_requests_total{" in expected
    assert generate_latest(new) == expected


def test_an_empty_tally_exports_the_families_without_series() -> None:
    old = CollectorRegistry()
    Counter("rerank_bridge_requests", "HTTP requests handled by the proxy", ["route"], registry=old)
    Histogram(
        "rerank_bridge_request_seconds", "Wall time of proxied requests", ["route"], registry=old
    )
    new = CollectorRegistry()
    new.register(RequestTally(_LATENCY_BUCKETS))
    assert generate_latest(new) == generate_latest(old)


def test_plain_counter_exports_what_a_counter_exports(frozen_clock: None) -> None:
    old, new = CollectorRegistry(), CollectorRegistry()
    counter = Counter("rerank_bridge_relayed_requests", "Relayed", registry=old)
    plain = PlainCounter("rerank_bridge_relayed_requests", "Relayed")
    new.register(plain)
    for _ in range(7):
        counter.inc()
        plain.inc()
    assert generate_latest(new) == generate_latest(old)


def test_proxy_metrics_keep_their_order_names_and_help() -> None:
    """The families in /metrics in the order they had with prometheus_client's own metrics
    (main at f95ebdd), and the help text of the replaced ones."""
    text = ProxyMetrics().render().decode()
    types = [line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert types == [
        "rerank_bridge_requests_total",
        "rerank_bridge_request_seconds",
        "rerank_bridge_reranks_total",
        "rerank_bridge_rerank_skipped_total",
        "rerank_bridge_rerank_seconds",
        "rerank_bridge_batch_pairs",
        "rerank_bridge_batch_requests",
        "rerank_bridge_model_seconds",
        "rerank_bridge_score_cache_hits_total",
        "rerank_bridge_score_cache_misses_total",
        "rerank_bridge_score_shared_in_flight_total",
        "rerank_bridge_relayed_requests_total",
        "rerank_bridge_relayed_requests_created",
        "rerank_bridge_upstream_errors_total",
        "rerank_bridge_model_available",
        "rerank_bridge_model_load_failures",
        "rerank_bridge_ab_searches_total",
        "rerank_bridge_ab_request_seconds",
        "rerank_bridge_settings_reloads_total",
        "rerank_bridge_cache_hits_total",
        "rerank_bridge_cache_misses_total",
        "rerank_bridge_cache_evictions_total",
        "rerank_bridge_cache_entries",
        "rerank_bridge_cache_bytes",
        "rerank_bridge_tokenize_seconds_total",
    ]
    assert "# HELP rerank_bridge_requests_total HTTP requests handled by the proxy\n" in text
    assert "# HELP rerank_bridge_request_seconds Wall time of proxied requests\n" in text


def test_access_log_counts_each_request_under_its_route() -> None:
    metrics = ProxyMetrics()
    log = AccessLog(metrics, frozenset({"/v1/rerank"}))
    for path, status in [("/i/_search", 200), ("/i/_doc/1", 404), ("/i/_search", 200)]:
        log.done({"method": "POST", "path": path}, status, 10, 0.003, {})
    text = metrics.render().decode()
    assert 'rerank_bridge_requests_total{method="POST",route="_search",status="200"} 2.0' in text
    passthrough = 'rerank_bridge_requests_total{method="POST",route="passthrough",status="404"}'
    assert f"{passthrough} 1.0" in text
    assert 'rerank_bridge_request_seconds_bucket{le="0.0025",route="_search"} 0.0' in text
    assert 'rerank_bridge_request_seconds_bucket{le="0.005",route="_search"} 2.0' in text


@pytest.mark.parametrize(
    ("method", "path", "status", "sent", "ms", "client", "rerank"),
    [
        ("POST", "/idx/_search", 200, 1234, 2.1, "127.0.0.1", {"x-rerank-status": "passthrough"}),
        ("GET", "/_cluster/health", 200, 0, 0.0, "::1", {}),
        ("GET", '/a"b\\c/\u00e9\u4e2d\U0001f600/\x01\x7f', 502, 7, 1e-05, "", {}),
        ("POST", "/i/_search", 200, 5, 123456.78, None, {"x-rerank-took": "1.5"}),
        ("POST", "/i/_search", 200, 5, 1.0, "h", {"x-rerank-model": 'm\u00e9"x', "z": "\n"}),
        ("POST", "/i/_search", 200, 5, 1.0, "h", {"path": "overrides"}),  # a key clash
        ("POST", "/i/_search", 200, 5, float("inf"), "h", {}),
    ],
)
def test_access_line_is_what_the_json_encoder_writes(
    method: str,
    path: str,
    status: int,
    sent: int,
    ms: float,
    client: str | None,
    rerank: dict[str, str],
) -> None:
    record = {
        "method": method,
        "path": path,
        "status": status,
        "bytes": sent,
        "ms": ms,
        "client": client,
        **rerank,
    }
    expected = json.JSONEncoder(separators=(",", ":")).encode(record)
    assert access_line(method, path, status, sent, ms, client, rerank) == expected


def _record(message: str, created: float) -> logging.LogRecord:
    record = logging.LogRecord("bridge.proxy.access", logging.INFO, __file__, 0, message, (), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


def test_handler_line_is_the_stream_handlers_line(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, batched = io.StringIO(), io.StringIO()
    plain = logging.StreamHandler(reference)
    plain.setFormatter(logging.Formatter(LINE_FORMAT))
    handler = AccessLineHandler(batched)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    for created in (NOW, NOW + 0.999, NOW + 1.0005, NOW + 3600.07):
        monkeypatch.setattr(time, "time", lambda created=created: created)
        plain.emit(_record('{"a":1}', created))
        handler.line("bridge.proxy.access", '{"a":1}')  # outside a loop: written at once
    assert batched.getvalue() == reference.getvalue()
    assert reference.getvalue().count("\n") == 4


def test_handler_with_another_format_formats_through_it() -> None:
    stream = io.StringIO()
    handler = AccessLineHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s|%(name)s|%(message)s"))
    handler.line("bridge.proxy.access", "m")
    assert stream.getvalue() == "INFO|bridge.proxy.access|m\n"


def test_handler_batches_lines_inside_an_event_loop() -> None:
    stream = io.StringIO()
    handler = AccessLineHandler(stream)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))

    async def run() -> tuple[str, str]:
        for i in range(3):
            handler.line("bridge.proxy.access", f"line {i}")
        before = stream.getvalue()
        await asyncio.sleep(AccessLineHandler.FLUSH_S * 3)
        return before, stream.getvalue()

    before, after = asyncio.run(run())
    assert (before, [line.rsplit(": ", 1)[1] for line in after.splitlines()]) == (
        "",
        ["line 0", "line 1", "line 2"],
    )


def test_handler_writes_a_full_batch_at_once_and_the_rest_on_flush() -> None:
    stream = io.StringIO()
    handler = AccessLineHandler(stream)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))

    async def run() -> tuple[int, int]:
        for i in range(AccessLineHandler.BATCH + 2):
            handler.line("bridge.proxy.access", f"{i}")
        written = stream.getvalue().count("\n")
        handler.flush()  # what logging.shutdown does at exit
        return written, stream.getvalue().count("\n")

    assert asyncio.run(run()) == (AccessLineHandler.BATCH, AccessLineHandler.BATCH + 2)


@pytest.fixture
def serve_logging() -> Iterator[io.StringIO]:
    """serve's logging configuration, its stream swapped for a buffer; restored after."""
    import logging.config

    names = ["bridge", "bridge.proxy.access"]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    levels = {n: logging.getLogger(n).level for n in names}
    config = log_config(verbose=False)
    config["disable_existing_loggers"] = False
    config["loggers"] = {n: config["loggers"][n] for n in names}
    logging.config.dictConfig(config)
    stream = io.StringIO()
    for handler in logging.getLogger("bridge.proxy.access").handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
    try:
        yield stream
    finally:
        for name in names:
            log = logging.getLogger(name)
            for handler in log.handlers:
                handler.close()
            log.handlers, log.propagate = saved[name]
            log.setLevel(levels[name])


def test_serve_logging_writes_access_lines_without_log_records(
    serve_logging: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    original = logging.Logger.makeRecord

    def counting(self: logging.Logger, *args: object, **kwargs: object) -> logging.LogRecord:
        made.append(self.name)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(logging.Logger, "makeRecord", counting)
    # as under serve: pytest hangs its capture handler on every non-propagating logger
    serve_handler = logging.getLogger("bridge.proxy.access").handlers[0]
    monkeypatch.setattr(access.access_logger, "handlers", [serve_handler])
    log = AccessLog(ProxyMetrics())
    log.done({"method": "GET", "path": "/x", "client": ("10.0.0.1", 1)}, 200, 3, 0.00123, {})
    logging.getLogger("bridge.proxy.access").handlers[0].flush()
    text = serve_logging.getvalue()
    assert made == []
    assert text.endswith(
        ' INFO bridge.proxy.access: {"method":"GET","path":"/x","status":200,"bytes":3,'
        '"ms":1.23,"client":"10.0.0.1"}\n'
    )


def test_a_filter_on_the_access_logger_gets_every_record(
    serve_logging: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_handler = logging.getLogger("bridge.proxy.access").handlers[0]
    monkeypatch.setattr(access.access_logger, "handlers", [serve_handler])
    seen: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    access.access_logger.addFilter(keep)
    try:
        AccessLog(ProxyMetrics()).done({"method": "GET", "path": "/y"}, 404, 0, 0.001, {})
    finally:
        access.access_logger.removeFilter(keep)
    logging.getLogger("bridge.proxy.access").handlers[0].flush()
    assert len(seen) == 1
    assert json.loads(seen[0])["status"] == 404
    assert serve_logging.getvalue().endswith(seen[0] + "\n")


def test_access_log_off_writes_nothing(serve_logging: io.StringIO) -> None:
    access.access_logger.setLevel(logging.WARNING)
    AccessLog(ProxyMetrics()).done({"method": "GET", "path": "/y"}, 200, 0, 0.001, {})
    logging.getLogger("bridge.proxy.access").handlers[0].flush()
    assert serve_logging.getvalue() == ""


def test_serve_app_freezes_the_heap_once_started() -> None:
    """The heap is frozen after the app's own start-up ran, not before."""
    from starlette.applications import Starlette

    from bridge.proxy.heap import settle_after_startup

    frozen_during_startup: list[int] = []

    @contextlib.asynccontextmanager
    async def startup(app: Starlette) -> AsyncIterator[None]:
        frozen_during_startup.append(gc.get_freeze_count())
        yield

    app = settle_after_startup(Starlette(lifespan=startup))

    async def run() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        frozen = asyncio.run(run())
    finally:
        gc.unfreeze()
    assert (frozen_during_startup, frozen > 1000) == ([0], True)


def _counted(metrics: ProxyMetrics) -> float:
    """Requests counted in ``rerank_bridge_requests_total`` (any labels), read without the
    flush a scrape makes."""
    return sum(
        sample.value
        for family in metrics.traffic.collect()
        for sample in family.samples
        if sample.name == "rerank_bridge_requests_total"
    )


def test_records_handed_over_later_are_counted_and_written_in_one_batch(
    serve_logging: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_handler = logging.getLogger("bridge.proxy.access").handlers[0]
    monkeypatch.setattr(access.access_logger, "handlers", [serve_handler])
    metrics = ProxyMetrics()
    log = AccessLog(metrics)

    async def run() -> tuple[float, str, float, str]:
        for n in range(3):
            log.later({"method": "GET", "path": f"/i/_doc/{n}"}, 200, n, 0.002, {})
        held = (_counted(metrics), serve_logging.getvalue())
        await asyncio.sleep(AccessLog.FLUSH_S * 3)  # no flush, no scrape: the timer's batch
        return (*held, _counted(metrics), serve_logging.getvalue())

    counted_before, text_before, counted_after, text_after = asyncio.run(run())
    paths = [json.loads(line.split(": ", 1)[1])["path"] for line in text_after.splitlines()]
    assert (counted_before, text_before) == (0, "")
    assert (counted_after, paths) == (3, ["/i/_doc/0", "/i/_doc/1", "/i/_doc/2"])


def test_a_scrape_counts_the_records_still_waiting_for_their_batch() -> None:
    metrics = ProxyMetrics()
    log = AccessLog(metrics)

    async def run() -> str:
        log.later({"method": "POST", "path": "/i/_count"}, 200, 9, 0.001, {})
        return metrics.render().decode()  # before the batch's timer

    series = 'rerank_bridge_requests_total{method="POST",route="passthrough",status="200"}'
    assert f"{series} 1.0" in asyncio.run(run())


def test_a_full_batch_is_counted_at_once_and_none_is_lost_or_counted_twice() -> None:
    metrics = ProxyMetrics()
    log = AccessLog(metrics)

    async def run() -> tuple[float, float, float]:
        for _ in range(AccessLog.BATCH + 5):
            log.later({"method": "GET", "path": "/_cluster/health"}, 200, 0, 0.001, {})
        at_once = _counted(metrics)
        metrics.flush()  # what the app's shutdown does
        flushed = _counted(metrics)
        await asyncio.sleep(AccessLog.FLUSH_S * 3)  # a cancelled timer counts nothing again
        return at_once, flushed, _counted(metrics)

    assert asyncio.run(run()) == (AccessLog.BATCH, AccessLog.BATCH + 5, AccessLog.BATCH + 5)


def test_a_record_handed_over_outside_an_event_loop_is_counted_at_once() -> None:
    metrics = ProxyMetrics()
    AccessLog(metrics).later({"method": "GET", "path": "/"}, 200, 0, 0.001, {})
    assert _counted(metrics) == 1
