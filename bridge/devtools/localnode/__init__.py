"""Real Elasticsearch/OpenSearch nodes from the integ-test zips published on Maven Central.

For tests, the demo and CI on machines without Docker: fetch (mvn or HTTPS), unpack into a cache,
run as a non-root user on 127.0.0.1 with a free port, health-check, stop the whole process group.
"""

from __future__ import annotations

from bridge.devtools.localnode.cluster import LocalCluster
from bridge.devtools.localnode.distribution import engines_cache_dir, ensure_distribution
from bridge.devtools.localnode.engines import DEFAULT_VERSIONS, ENGINES
from bridge.devtools.localnode.process import LocalNode, terminate_group, wait_for_health

__all__ = [
    "DEFAULT_VERSIONS",
    "ENGINES",
    "LocalCluster",
    "LocalNode",
    "engines_cache_dir",
    "ensure_distribution",
    "terminate_group",
    "wait_for_health",
]
