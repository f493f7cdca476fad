"""Several upstream nodes: which one gets a request, and which requests may go to another.

Choosing a node, marking it dead after a failure (for ``dead_node_backoff_s * 2**(n-1)`` seconds,
capped) and resurrecting it afterwards is elastic-transport's `NodePool`, the one elasticsearch-py
uses, with one guard: its dead queue keeps an entry per failure, and when an old entry's time is
up it hands the node out again, still in its backoff (a node down for good is then picked again
and again, the last attempt of a request included). ``UpstreamNodes.get`` keeps each node's own
backoff and gives a node still in it only when every node is. Each node keeps its own keep-alive
connection pool (bridge.proxy.h1_pool).

What this module adds is the proxy's retry rule, stricter than a client library's because the
proxy cannot know what a request means to its caller:

- a *read* (GET/HEAD, or a POST to a search/count/mget endpoint) with a body held in memory is
  retried on another node after a connection error or a 502/503, with jittered backoff, and so is
  a 200 search answer that is partial because a node holding a shard vanished mid-search (the
  engines resend a failed query phase to another copy, but not a shard request cut off by the
  node's death: `_shards.failed` with `node_disconnected_exception`), and a 5xx whose error is
  caused by such a node (a fetch phase sent to a node that had just left);
- any request is retried when the connection could not even be opened (nothing was sent);
- nothing else is ever resent: a write whose connection broke after it was sent may have been
  applied, and resending it could duplicate a document. The client gets a 502 and decides.
"""

from __future__ import annotations

import json
import random
import re
import time
import zlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
from elastic_transport import NodeConfig, NodePool
from elastic_transport._node import BaseNode

from bridge.proxy.h1_pool import H1Pool

# the engine answered but the node (not the request) is the problem: try another node
RETRY_STATUSES = frozenset({502, 503})
# POST endpoints that only read, so a retry cannot change anything (last path segments)
READ_ENDPOINTS = frozenset(
    {
        ("_search",),
        ("_msearch",),
        ("_count",),
        ("_mget",),
        ("_field_caps",),
        ("_terms_enum",),
        ("_search", "template"),
        ("_msearch", "template"),
        ("_render", "template"),
        ("_validate", "query"),
    }
)


# shard failures that mean "the node holding this copy went away", not "this query is wrong"
_LOST_NODE = (
    b"node_disconnected_exception",
    b"node_not_connected_exception",
    b"node_closed_exception",
    b"connect_transport_exception",
)


_HEAD_BYTES = 1 << 16
# How a single search or count answer starts when no shard failed: `_shards` closes right after
# `"failed":0` (the engines list `failures` only when some failed). Anchored at the first byte, so
# it cannot match inside a string value; any other start (pretty-printed, `_msearch`, extra
# fields first) is read the long way.
_CLEAN_START = re.compile(
    rb'\{(?:"took":\d+,"timed_out":(?:true|false),|"count":\d+,)'
    rb'"_shards":\{"total":\d+,"successful":\d+,(?:"skipped":\d+,)?"failed":0\}'
)
_START_BYTES = 192


def _decoded(content: bytes, encoding: bytes, limit: int | None) -> bytes:
    """The body without gzip/deflate (its first ``limit`` bytes); b"" when unreadable."""
    if encoding == b"identity":
        return content if limit is None else content[:limit]
    if encoding not in (b"gzip", b"x-gzip", b"deflate"):
        return b""
    inflater = zlib.decompressobj(15 if encoding == b"deflate" else 31)
    try:
        return inflater.decompress(content, limit or 0)
    except zlib.error:
        return b""


def content_encoding(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """An answer's `Content-Encoding`, lower case (``identity`` when it has none)."""
    for name, value in headers:
        if name.lower() == b"content-encoding":
            return value.strip().lower()
    return b"identity"


def lost_a_node(response: Any) -> bool:
    """Whether a read answer (already read in full) is partial or failed because a node died
    under it."""
    return lost_a_node_in(response.content, content_encoding(response.headers))


def lost_a_node_in(content: bytes, encoding: bytes) -> bool:
    """``lost_a_node`` of an answer's body and its `Content-Encoding` (``content_encoding``)."""
    if _CLEAN_START.match(_decoded(content, encoding, _START_BYTES)):
        return False  # the common case, told from the answer's first bytes
    head = _decoded(content, encoding, _HEAD_BYTES)
    if not any(marker in head for marker in _LOST_NODE):
        return False  # `_shards.failures` and `error` come first in an answer
    try:
        answer = json.loads(_decoded(content, encoding, None))
    except ValueError:
        return False
    answers = answer.get("responses", [answer]) if isinstance(answer, dict) else []
    return any(_names_a_lost_node(item) for item in answers if isinstance(item, dict))


def _names_a_lost_node(answer: dict[str, Any]) -> bool:
    """Whether one search answer (or one `_msearch` item) failed where a node went away: a shard
    failure, or a whole-search error such as a fetch phase whose node had just left (HTTP 500
    `search_phase_execution_exception` caused by `node_not_connected_exception`)."""
    shards = answer.get("_shards")
    failures = shards.get("failures", []) if isinstance(shards, dict) else []
    suspects = list(failures) if isinstance(failures, list) else []
    status = answer.get("status")
    if "error" in answer and isinstance(status, int) and status >= 500:
        suspects.append(answer["error"])  # a 4xx is the request's own fault, whatever it names
    return any(
        any(marker in json.dumps(suspect).encode() for marker in _LOST_NODE) for suspect in suspects
    )


_READ_LAST = frozenset(end[0].encode() for end in READ_ENDPOINTS if len(end) == 1)
_READ_PAIRS = frozenset(
    (end[0].encode(), end[1].encode()) for end in READ_ENDPOINTS if len(end) == 2
)


def is_read(method: str, raw_path: bytes) -> bool:
    """GET/HEAD, or a POST to an endpoint that only reads (never scroll or point-in-time)."""
    if method == "GET" or method == "HEAD":
        return b"/_search/scroll" not in raw_path
    if method != "POST":
        return False
    parts = [p for p in raw_path.split(b"?", 1)[0].split(b"/") if p]
    if not parts:
        return False
    return parts[-1] in _READ_LAST or (len(parts) > 1 and (parts[-2], parts[-1]) in _READ_PAIRS)


def backoff_s(attempt: int, base: float, cap: float) -> float:
    """Equal-jitter exponential backoff before retry number ``attempt`` (1, 2, ...)."""
    if base <= 0:
        return 0.0
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def redacted(url: str) -> str:
    """scheme://host:port/prefix with any user:password@ removed (safe for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


class UpstreamNode(BaseNode):
    """One engine node for the pool: its address and its own connection pool.

    Built by `NodePool` from a `NodeConfig` alone, so the TLS context and the pool size travel in
    the config (`ssl_context`, `connections_per_node`). The proxy sends raw requests through
    ``pool`` itself; the client-library `perform_request` is deliberately not implemented.
    """

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.pool = H1Pool(
            config.host,
            config.port,
            ssl_context=config.ssl_context if config.scheme == "https" else None,
            max_connections=config.connections_per_node,
            keepalive_expiry=30.0,
        )
        default_port = 443 if config.scheme == "https" else 80
        host = f"[{config.host}]" if ":" in config.host else config.host
        port = f":{config.port}" if config.port != default_port else ""
        self.host_header = host.encode("idna") + port.encode()
        self.prefix = config.path_prefix.rstrip("/").encode()

    def target(self, raw_path: bytes, query: bytes = b"") -> bytes:
        """The request target on this node: its path prefix, the path, the query string.
        Always origin-form, so a path such as `//other-host/x` cannot change the host."""
        return self.prefix + raw_path + (b"?" + query if query else b"")

    def url(self, raw_path: bytes, query: bytes = b"") -> httpcore.URL:
        target = self.target(raw_path, query)
        return httpcore.URL(
            scheme=self.scheme.encode(),
            host=self.host.encode("idna"),
            port=self.port,
            target=target,
        )


def node_config(url: str, *, ssl_context: object, connections: int) -> NodeConfig:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return NodeConfig(
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=parts.port or default_port,
        path_prefix=parts.path.rstrip("/"),
        connections_per_node=connections,
        ssl_context=ssl_context,  # type: ignore[arg-type]
    )


class UpstreamNodes:
    """The pool of engine nodes (elastic-transport's `NodePool`) and each node's state."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        ssl_context: object,
        connections: int,
        dead_backoff_s: float,
        max_dead_backoff_s: float,
    ) -> None:
        configs = [node_config(u, ssl_context=ssl_context, connections=connections) for u in urls]
        self.pool = NodePool(
            configs,
            UpstreamNode,
            dead_node_backoff_factor=dead_backoff_s,
            max_dead_node_backoff=max_dead_backoff_s,
            node_selector_class="round_robin",
            randomize_nodes=False,
        )
        self.nodes: list[UpstreamNode] = [n for n in self.pool.all() if isinstance(n, UpstreamNode)]
        self._failures: dict[UpstreamNode, int] = {}
        self._backoff = (dead_backoff_s, max_dead_backoff_s)
        self._dead_until: dict[UpstreamNode, float] = {}  # monotonic time its backoff ends
        self._spare_turn = 0

    def get(self) -> UpstreamNode:
        if len(self.nodes) == 1:  # what NodePool.get answers for one node, without its lock
            return self.nodes[0]
        node = self.pool.get()
        assert isinstance(node, UpstreamNode)
        dead_until = self._dead_until
        if not dead_until:
            return node
        now = time.monotonic()
        if dead_until.get(node, 0.0) <= now:
            return node
        # in its backoff still (a stale entry of the pool's dead queue came up): another node
        # that is not, in turn; when every node is, the one whose backoff ends first
        spare = [n for n in self.nodes if dead_until.get(n, 0.0) <= now]
        if not spare:
            return min(self.nodes, key=lambda n: dead_until[n])
        self._spare_turn += 1
        return spare[self._spare_turn % len(spare)]

    def mark_dead(self, node: UpstreamNode) -> None:
        failures = self._failures[node] = self._failures.get(node, 0) + 1
        if len(self.nodes) > 1:  # a lone node is always the one to try (as in elastic-transport)
            self.pool.mark_dead(node)
            factor, cap = self._backoff
            try:  # the pool's own rule (NodePool.mark_dead)
                backoff = min(factor * 2 ** (failures - 1), cap)
            except OverflowError:
                backoff = cap
            self._dead_until[node] = time.monotonic() + backoff

    def mark_live(self, node: UpstreamNode) -> None:
        if self._failures.pop(node, None) is not None:
            self._dead_until.pop(node, None)
            self.pool.mark_live(node)

    def states(self) -> list[dict[str, object]]:
        """Each node's URL and its failures in a row (0: healthy; else resurrected on backoff)."""
        return [
            {
                "url": n.base_url,
                "healthy": n not in self._failures,
                "failures": self._failures.get(n, 0),
            }
            for n in self.nodes
        ]

    async def aclose(self) -> None:
        for node in self.nodes:
            await node.pool.aclose()
