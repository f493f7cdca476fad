"""Stored vectors: write a bi-encoder's document vectors into an index (``rerank-bridge embed``)
and tell which model made them (``_meta`` fingerprint)."""

from bridge.vectors.fingerprint import META_KEY, VectorsMeta, model_fingerprint

__all__ = ["META_KEY", "VectorsMeta", "model_fingerprint"]
