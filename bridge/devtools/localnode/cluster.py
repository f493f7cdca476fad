"""Several local nodes forming one cluster on loopback (both engines), for fault tests.

Every node is master-eligible and holds data. Transport and HTTP ports are chosen up front, so
the seed list is known before any node starts and a node killed with `kill()` comes back with
`restart()` at the same address, on its own data, and rejoins.

>>> with LocalCluster("elasticsearch", nodes=3) as cluster:   # doctest: +SKIP
...     print(cluster.urls)
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from bridge.devtools.localnode.process import LocalNode
from bridge.errors import NodeError

_BOOTSTRAP_SETTING = {
    "elasticsearch": "cluster.initial_master_nodes",
    "opensearch": "cluster.initial_cluster_manager_nodes",
}


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (held together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for probe in sockets:
            probe.close()


class LocalCluster:
    """``nodes`` nodes of one engine forming one cluster on 127.0.0.1."""

    def __init__(
        self,
        engine: str,
        nodes: int = 3,
        version: str | None = None,
        *,
        heap_mb: int = 512,
        cache_dir: Path | None = None,
        settings: Mapping[str, object] | None = None,
        startup_timeout: float = 300.0,
    ) -> None:
        if nodes < 2:
            raise NodeError("a cluster needs at least 2 nodes; use LocalNode for one")
        self.engine = engine
        self.startup_timeout = startup_timeout
        names = [f"rerank-bridge-{engine}-{i}" for i in range(nodes)]
        ports = free_ports(2 * nodes)
        transport, http = ports[:nodes], ports[nodes:]
        seeds = [f"127.0.0.1:{port}" for port in transport]
        self.nodes = [
            LocalNode(
                engine,
                version,
                cache_dir=cache_dir,
                heap_mb=heap_mb,
                node_name=names[i],
                startup_timeout=startup_timeout,
                settings={
                    "cluster.name": f"rerank-bridge-{engine}-cluster",
                    "discovery.type": None,  # not single-node
                    "discovery.seed_hosts": seeds,
                    _BOOTSTRAP_SETTING[engine]: names,
                    "transport.port": transport[i],
                    "http.port": http[i],
                    **(settings or {}),
                },
            )
            for i in range(nodes)
        ]
        self.version = self.nodes[0].version

    @property
    def urls(self) -> list[str]:
        """Every node's HTTP URL (also while a node is down: it comes back at the same one)."""
        return [f"http://127.0.0.1:{node.extra_settings['http.port']}" for node in self.nodes]

    def start(self) -> list[str]:
        """Start every node in parallel and wait until the cluster is green with all of them."""
        self.nodes[0].prepare()  # fetch/unpack once, before the parallel starts
        try:
            with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                list(pool.map(lambda node: node.start(wait=False), self.nodes))
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.urls

    def wait_ready(self, status: str = "green") -> str:
        """Block until a live node reports ``status`` with every node in the cluster."""
        live = next(node for node in self.nodes if node.status == "running")
        return live.wait_ready(nodes=len(self.nodes), status=status)

    def master_index(self) -> int:
        """Which node is the elected master (cluster manager) now."""
        live = next(node for node in self.nodes if node.status == "running")
        master = live.get_json("/_cat/master?format=json").get("items", [{}])[0].get("node")
        for i, node in enumerate(self.nodes):
            if node.node_name == master:
                return i
        raise NodeError(f"no node of this cluster is master ({master!r})")

    def kill(self, index: int) -> None:
        """`kill -9` one node (its whole process group), keeping its data for `restart`."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start a killed node again on its data and wait until the cluster has every node."""
        node = self.nodes[index]
        node.extra_settings[_BOOTSTRAP_SETTING[self.engine]] = None  # only for the first start
        node.start(wait=False, keep_data=True)
        self.wait_ready(status="yellow")

    def stop(self) -> None:
        errors = []
        for node in self.nodes:
            try:
                node.stop()
            except NodeError as exc:  # keep stopping the others
                errors.append(str(exc))
        if errors:
            raise NodeError("; ".join(errors))

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
