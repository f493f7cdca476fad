"""Prometheus metrics, one registry per app (several apps can live in one process, e.g. tests)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
