"""A small product sample shipped with the package, so a newcomer can rerank with no dataset.

36 hardware-store products (title, brand, description, category) written for this project,
with near-misses on purpose (a drill bit set for "cordless drill", a hose clamp for "garden hose").
`load_sample(client)` puts them into an index once; calling it again reuses that index.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from bridge.devtools.indexing import bulk_index, create_index
from bridge.errors import UpstreamError

SAMPLE_INDEX = "rerank-bridge-sample"
SAMPLE_FILE = "sample_products.jsonl"


def sample_products() -> list[dict[str, Any]]:
    """The shipped products, in file order."""
    text = resources.files("bridge.devtools").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def client_engine(client: Any) -> str:
    """'opensearch' for an opensearch-py client, else 'elasticsearch'."""
    return "opensearch" if type(client).__module__.startswith("opensearchpy") else "elasticsearch"


def load_sample(client: Any, index: str = SAMPLE_INDEX) -> str:
    """Create `index` with the sample products unless it already holds them; return its name."""
    products = sample_products()
    if client.indices.exists(index=index):
        if int(client.count(index=index)["count"]) == len(products):
            return index
    else:
        try:
            create_index(client, index, client_engine(client), vectors=False)
        except Exception as exc:  # another process created it first: fill it all the same
            if "resource_already_exists" not in str(exc):
                raise UpstreamError(f"cannot create sample index {index}: {exc}") from exc
    bulk_index(client, index, products, progress=False)
    return index
