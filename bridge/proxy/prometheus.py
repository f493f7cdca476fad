"""Prometheus metrics, one registry per app (several apps can live in one process, e.g. tests).

What every request counts (``rerank_bridge_requests_total``, ``rerank_bridge_request_seconds``,
``rerank_bridge_relayed_requests_total``) is kept as plain numbers (``RequestTally``,
``PlainCounter``) and turned into prometheus_client's metric families when /metrics is scraped:
the same names, labels, values and ``_created`` series as a ``Counter`` and a ``Histogram`` give,
without their label look-up and locks on every request. They are written and scraped on the event
loop's thread only.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client.metrics
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ProxyMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # rerank_bridge_requests_total {route, method, status} + rerank_bridge_request_seconds
        self.traffic = RequestTally(_LATENCY_BUCKETS)
        self.registry.register(self.traffic)
        self.reranks = self._counter(
            "reranks",
            "Searches on rerank routes by outcome (reranked, skipped, passthrough)",
            "status",
            "model",
        )
        self.skipped = self._counter(
            "rerank_skipped", "Reranks that failed open, by reason", "reason"
        )
        self.rerank_seconds = self._histogram(
            "rerank_seconds",
            "Time spent scoring one search (queueing + model)",
            _LATENCY_BUCKETS,
            "model",
        )
        self.batch_pairs = self._histogram(
            "batch_pairs", "Pairs per model run (micro-batch size)", _BATCH_BUCKETS, "model"
        )
        self.batch_requests = self._histogram(
            "batch_requests", "Searches sharing one model run", _BATCH_BUCKETS, "model"
        )
        self.model_seconds = self._histogram(
            "model_seconds", "Wall time of one model run", _LATENCY_BUCKETS, "model"
        )
        self.cache_hits = self._counter(
            "score_cache_hits", "Pairs answered from the score cache", "model"
        )
        self.cache_misses = self._counter(
            "score_cache_misses",
            "Pairs not in the score cache (scored, or shared with a run in flight)",
            "model",
        )
        self.shared_in_flight = self._counter(
            "score_shared_in_flight",
            "Missing pairs another search was already having scored (waited for, not rescored)",
            "model",
        )
        self.relayed = PlainCounter(
            "rerank_bridge_relayed_requests",
            "Pass-through reads relayed by the server protocol itself (no ASGI cycle)",
        )
        self.registry.register(self.relayed)
        self.upstream_errors = self._counter(
            "upstream_errors", "Upstream exchanges that failed (unreachable or timed out)", "kind"
        )
        self.model_available = Gauge(
            "rerank_bridge_model_available",
            "1 when the model is loaded, 0 while it cannot be (see /_bridge/health for why)",
            ["model"],
            registry=self.registry,
        )
        self.model_load_failures = Gauge(
            "rerank_bridge_model_load_failures",
            "Failed load attempts of a model since it last loaded (0 once loaded)",
            ["model"],
            registry=self.registry,
        )

        self.ab_searches = self._counter(
            "ab_searches",
            "Searches under an A/B split, by index pattern, bucket and X-Rerank-Status",
            "pattern",
            "bucket",
            "status",
        )
        self.ab_request_seconds = self._histogram(
            "ab_request_seconds",
            "Wall time of requests under an A/B split, by index pattern and bucket",
            _LATENCY_BUCKETS,
            "pattern",
            "bucket",
        )
        self.settings_reloads = self._counter(
            "settings_reloads",
            "Settings reloads (SIGHUP or a changed file) by result: applied or rejected",
            "result",
        )

        self.caches = ScorerCaches()
        self.registry.register(self.caches)
        # what holds counts back to add them in batches (bridge.proxy.access.AccessLog.later):
        # called before the metrics are read, and at shutdown
        self.held_back: list[Callable[[], None]] = []

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"rerank_bridge_{name}", doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(
            f"rerank_bridge_{name}", doc, labels, buckets=buckets, registry=self.registry
        )

    def flush(self) -> None:
        """Count what is held back (the access records waiting for their batch)."""
        for flush in self.held_back:
            flush()

    def render(self) -> bytes:
        self.flush()
        return generate_latest(self.registry)


class ScorerCaches(Collector):
    """Hits, misses, evictions, entries and bytes of every cache of the loaded scorers (scores,
    passage token ids, embeddings) and their tokenization time, read when /metrics is scraped."""

    def __init__(self) -> None:
        self._scorers: dict[str, Any] = {}

    def watch(self, model: str, scorer: Any) -> None:
        if hasattr(scorer, "cache_stats"):
            self._scorers[model] = scorer

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "cache"]
        families = {
            name: CounterMetricFamily(f"rerank_bridge_cache_{name}", text, labels=labels)
            for name, text in (
                ("hits", "Look-ups answered from a scorer cache"),
                ("misses", "Look-ups a scorer cache could not answer"),
                ("evictions", "Entries a scorer cache dropped to stay in its bounds"),
            )
        }
        entries = GaugeMetricFamily(
            "rerank_bridge_cache_entries", "Entries held by a scorer cache", labels=labels
        )
        size = GaugeMetricFamily(
            "rerank_bridge_cache_bytes", "Estimated bytes held by a scorer cache", labels=labels
        )
        tokenize = CounterMetricFamily(
            "rerank_bridge_tokenize_seconds", "Wall time spent tokenizing", labels=["model"]
        )
        for model, scorer in list(self._scorers.items()):
            for cache, stats in scorer.cache_stats().items():
                families["hits"].add_metric([model, cache], stats.hits)
                families["misses"].add_metric([model, cache], stats.misses)
                families["evictions"].add_metric([model, cache], stats.evictions)
                entries.add_metric([model, cache], stats.entries)
                size.add_metric([model, cache], stats.bytes)
            tokenize.add_metric([model], scorer.tokenize_seconds())
        yield from families.values()
        yield entries
        yield size
        yield tokenize


def _created_series() -> bool:
    """Whether prometheus_client exports ``_created`` series (PROMETHEUS_DISABLE_CREATED_SERIES)."""
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class PlainCounter(Collector):
    """A counter without labels: ``inc`` adds to a float, exported as a prometheus_client
    ``Counter`` of the same name would be (``<name>_total`` and ``<name>_created``)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def collect(self) -> Iterator[Metric]:
        family = Metric(self.name, self.documentation, "counter")
        family.add_sample(f"{self.name}_total", {}, self.value)
        if _created_series():
            family.add_sample(f"{self.name}_created", {}, self.created)
        yield family


class _Series:
    """One histogram series: observations per bucket (not cumulative), their sum, its birth."""

    __slots__ = ("counts", "created", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0
        self.created = time.time()


class RequestTally(Collector):
    """Every answered request: ``rerank_bridge_requests_total`` {route, method, status} and
    ``rerank_bridge_request_seconds`` {route}, as the ``Counter`` and ``Histogram`` they replace
    export them (series in first-seen order, cumulative buckets with ``+Inf``, ``_count``,
    ``_sum``, ``_created``), for a dictionary update and a bisect per request."""

    REQUESTS = "rerank_bridge_requests"
    SECONDS = "rerank_bridge_request_seconds"

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = (*sorted(buckets), math.inf)
        self._requests: dict[tuple[str, str, int], list[float]] = {}  # -> [count, created]
        self._seconds: dict[str, _Series] = {}

    def add(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        count = self._requests.get(key)
        if count is None:
            self._requests[key] = [1, time.time()]
        else:
            count[0] += 1
        series = self._seconds.get(route)
        if series is None:
            series = self._seconds[route] = _Series(len(self.bounds))
        # the first bucket whose bound is >= the value (prometheus_client: value <= bound)
        series.counts[bisect_left(self.bounds, elapsed)] += 1
        series.total += elapsed

    def collect(self) -> Iterator[Metric]:
        created = _created_series()
        requests = Metric(self.REQUESTS, "HTTP requests handled by the proxy", "counter")
        for (route, method, status), (count, born) in list(self._requests.items()):
            labels = {"route": route, "method": method, "status": str(status)}
            requests.add_sample(f"{self.REQUESTS}_total", labels, float(count))
            if created:
                requests.add_sample(f"{self.REQUESTS}_created", labels, born)
        yield requests
        seconds = Metric(self.SECONDS, "Wall time of proxied requests", "histogram")
        bucket_name = f"{self.SECONDS}_bucket"
        les = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        for route, series in list(self._seconds.items()):
            total = 0.0
            for le, count in zip(les, series.counts, strict=True):
                total += count
                seconds.add_sample(bucket_name, {"route": route, "le": le}, total)
            labels = {"route": route}
            seconds.add_sample(f"{self.SECONDS}_count", labels, total)
            seconds.add_sample(f"{self.SECONDS}_sum", labels, series.total)
            if created:
                seconds.add_sample(f"{self.SECONDS}_created", labels, series.created)
        yield seconds
