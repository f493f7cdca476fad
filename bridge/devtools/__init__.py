"""Development and demo tools: local engine nodes, index loading and the demo script.

Not part of the product API: ``import bridge`` does not import this package. Tests, the demo
(``python -m bridge.devtools.demo``), ``rerank-bridge node`` and ``rerank-bridge eval`` use it.
"""

from __future__ import annotations

from bridge.devtools.indexing import bulk_index, create_index, read_homedepot_products
from bridge.devtools.localnode import LocalCluster, LocalNode
from bridge.devtools.sample import load_sample

__all__ = [
    "LocalCluster",
    "LocalNode",
    "bulk_index",
    "create_index",
    "load_sample",
    "read_homedepot_products",
]
