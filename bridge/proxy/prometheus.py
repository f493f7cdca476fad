"""Prometheus metrics, one registry per app (several apps can live in one process, e.g. tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ProxyMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rerank_bridge_requests",
            "HTTP requests handled by the proxy",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "rerank_bridge_request_seconds",
            "Wall time of proxied requests",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reranks = Counter(
            "rerank_bridge_reranks",
            "Searches on rerank routes by outcome (reranked, skipped, passthrough)",
            ["status", "model"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "rerank_bridge_rerank_skipped",
            "Reranks that failed open, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.rerank_seconds = Histogram(
            "rerank_bridge_rerank_seconds",
            "Time spent scoring one search (queueing + model)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_pairs = Histogram(
            "rerank_bridge_batch_pairs",
            "Pairs per model run (micro-batch size)",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "rerank_bridge_batch_requests",
            "Searches sharing one model run",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "rerank_bridge_model_seconds",
            "Wall time of one model run",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "rerank_bridge_score_cache_hits",
            "Pairs answered from the score cache",
            ["model"],
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "rerank_bridge_score_cache_misses",
            "Pairs the model had to score",
            ["model"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "rerank_bridge_upstream_errors",
            "Upstream exchanges that failed (unreachable or timed out)",
            ["kind"],
            registry=self.registry,
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

        self.ab_searches = Counter(
            "rerank_bridge_ab_searches",
            "Searches under an A/B split, by index pattern, bucket and X-Rerank-Status",
            ["pattern", "bucket", "status"],
            registry=self.registry,
        )
        self.ab_request_seconds = Histogram(
            "rerank_bridge_ab_request_seconds",
            "Wall time of requests under an A/B split, by index pattern and bucket",
            ["pattern", "bucket"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.settings_reloads = Counter(
            "rerank_bridge_settings_reloads",
            "Settings reloads (SIGHUP or a changed file) by result: applied or rejected",
            ["result"],
            registry=self.registry,
        )

        self.caches = ScorerCaches()
        self.registry.register(self.caches)

    def render(self) -> bytes:
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
