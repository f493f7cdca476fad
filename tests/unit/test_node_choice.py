"""Which upstream node a request goes to while one is down (bridge.proxy.upstream_nodes).

elastic-transport's `NodePool` keeps one dead-queue entry per failure; when an old entry's time is
up it hands the node out again, still inside the backoff of its latest failure. A node down for
good would then take one attempt after another (in CI: a search's every attempt, its last one
included, refused by a killed node). ``UpstreamNodes.get`` gives such a node only when every node
is in its backoff."""

from __future__ import annotations

import time
from collections import Counter

from bridge.proxy.upstream_nodes import UpstreamNodes

URLS = ["http://127.0.0.1:9201", "http://127.0.0.1:9202", "http://127.0.0.1:9203"]


def _nodes(backoff_s: float = 0.01, cap_s: float = 60.0) -> UpstreamNodes:
    return UpstreamNodes(
        URLS, ssl_context=None, connections=1, dead_backoff_s=backoff_s, max_dead_backoff_s=cap_s
    )


def test_a_node_failing_again_and_again_is_not_picked_inside_its_backoff() -> None:
    nodes = _nodes()
    down = nodes.nodes[0]
    for _ in range(12):  # backoffs 0.01, 0.02, ... 20.48 s: the old entries are up at once
        nodes.mark_dead(down)
    time.sleep(0.1)
    picked = Counter(nodes.get().base_url for _ in range(60))
    assert down.base_url not in picked
    assert sorted(picked.values()) == [30, 30]  # the other two in turn


def test_the_pool_itself_hands_the_node_out_again_which_the_guard_is_for() -> None:
    nodes = _nodes()
    down = nodes.nodes[0]
    for _ in range(12):
        nodes.mark_dead(down)
    time.sleep(0.1)
    assert any(nodes.pool.get() is down for _ in range(60))


def test_when_every_node_is_down_the_one_back_soonest_is_tried() -> None:
    nodes = _nodes(backoff_s=30.0, cap_s=300.0)
    first, second, third = nodes.nodes
    for node, failures in ((first, 3), (second, 1), (third, 2)):
        for _ in range(failures):
            nodes.mark_dead(node)
    assert {nodes.get() for _ in range(20)} == {second}


def test_a_node_back_after_its_backoff_is_tried_and_once_live_is_picked_as_before() -> None:
    nodes = _nodes(backoff_s=0.05)
    down = nodes.nodes[0]
    nodes.mark_dead(down)
    assert down not in {nodes.get() for _ in range(10)}
    time.sleep(0.1)
    assert down in {nodes.get() for _ in range(10)}  # its backoff is over: tried again
    nodes.mark_live(down)
    assert Counter(nodes.get() for _ in range(30)) == Counter(dict.fromkeys(nodes.nodes, 10))


def test_no_backoff_configured_means_none_however_many_failures() -> None:
    nodes = _nodes(backoff_s=0.0)
    down = nodes.nodes[0]
    for _ in range(70):
        nodes.mark_dead(down)
    assert down in {nodes.get() for _ in range(10)}
