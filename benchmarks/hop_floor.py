"""The floor of a user-space hop on this host: a byte pipe beside the proxies, 1 client.

A pass-through proxy costs every request two more loopback exchanges and two more process
wake-ups, whatever its code does. This script measures that floor next to the proxies, in one
run with a rotated order (each side goes first in turn): a TCP pipe written in asyncio + uvloop
(one upstream connection per client connection, bytes copied as they arrive, no HTTP parsing at
all) against direct requests to the engine and against
this checkout's `rerank-bridge serve` and, with ``--baseline-repo``, another checkout's. With
``--minimal-relays``, two featureless HTTP relays too (minimal_relays.py: one in Python, one in Go,
built here): what reading HTTP at all costs, above the pipe. With ``--instances N``, N proxy
processes of each checkout, each its own side, to see how much one process's luck weighs. Every
side added lengthens the rotation, so each proxy waits longer between its requests and meets
colder caches: a proxy's overhead here is lowest with no baseline and one instance (the figure
for "how much does the hop cost"), and a baseline or more instances are for comparing code.
Prints JSON lines: each side's p50, its overhead over direct and its process's CPU per request
(and with several instances, each checkout's median share).

    .venv/bin/python benchmarks/hop_floor.py --rounds 600 --baseline-repo /tmp/relay/base
    .venv/bin/python benchmarks/hop_floor.py --rounds 1000 --minimal-relays
    .venv/bin/python benchmarks/hop_floor.py --rounds 1000 --instances 3 --baseline-repo ../base
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from minimal_relays import MinimalRelay, serve, start_go_relay, start_script  # siblings
from proxy_load import (  # a sibling script, not a package
    NANO,
    REPO,
    ProxyProcess,
    load_index,
    process_cpu_s,
    products,
    queries,
)


class _Pipe(asyncio.Protocol):
    """One client connection, piped byte for byte to its own upstream connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.peer: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        back = _Back(self)
        peer, _ = await loop.create_connection(lambda: back, self.host, self.port)
        self.peer = peer  # type: ignore[assignment]
        for data in self.pending:
            peer.write(data)  # type: ignore[attr-defined]
        self.pending = []

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.pending.append(data)
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


class _Back(asyncio.Protocol):
    def __init__(self, front: _Pipe) -> None:
        self.front = front

    def data_received(self, data: bytes) -> None:
        self.front.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.transport.close()


def start_pipe(upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A pipe process to ``upstream`` on a free port; its URL and process."""
    return start_script(__file__, "--serve-pipe", upstream, "the pipe")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--model", default=str(NANO))
    parser.add_argument(
        "--baseline-repo", type=Path, default=None, help="another checkout, run as a second proxy"
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="proxy processes per checkout, each its own side: one process's luck (its cores, "
        "its memory layout) shows as their spread, and the median of each checkout is printed",
    )
    parser.add_argument(
        "--minimal-relays",
        action="store_true",
        help="also a featureless HTTP relay in Python and one in Go (needs `go`)",
    )
    parser.add_argument("--serve-pipe", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--serve-minimal", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_pipe:
        serve(_Pipe, args.serve_pipe, args.port)
        return 0
    if args.serve_minimal:
        serve(MinimalRelay, args.serve_minimal, args.port)
        return 0
    if args.instances < 1:
        parser.error(f"--instances must be at least 1, not {args.instances}")
    upstream = args.upstream.rstrip("/")
    index = load_index(upstream, products(args.docs))
    terms = queries(2000)
    checkouts = {"proxy": REPO}
    if args.baseline_repo is not None:
        checkouts["baseline"] = args.baseline_repo
    procs = {
        label if n == 1 else f"{label}{n}": ProxyProcess(
            upstream, args.model, batching=True, repo=repo
        )
        for label, repo in checkouts.items()
        for n in range(1, args.instances + 1)
    }
    pipe_url, pipe = start_pipe(upstream)
    floors: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    go_build = tempfile.TemporaryDirectory(prefix="hop-floor-go-")
    try:
        if args.minimal_relays:
            floors["minimal_python"] = start_script(
                __file__, "--serve-minimal", upstream, "the minimal Python relay"
            )
            floors["minimal_go"] = start_go_relay(upstream, Path(go_build.name))
        for proc in procs.values():
            proc.wait_ready()
        sides = {"direct": upstream, "pipe": pipe_url}
        pids = {"pipe": pipe.pid}
        for name, proc in procs.items():
            sides[name] = proc.url
            pids[name] = proc.pid
        for name, (url, process) in floors.items():
            sides[name] = url
            pids[name] = process.pid
        measure(sides, pids, index, terms, args.rounds)
    finally:
        pipe.terminate()
        pipe.wait(10)
        for _, process in floors.values():
            process.terminate()
            process.wait(10)
        go_build.cleanup()
        for proc in procs.values():
            proc.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


def measure(
    sides: dict[str, str], pids: dict[str, int], index: str, terms: list[str], rounds: int
) -> None:
    """Each round: the same request to every side, who goes first rotating; a new query
    text per round (no engine or proxy cache answers the same request twice in a row)."""
    names = list(sides)
    clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in sides.items()}
    try:
        for kind in ("search", "count"):
            path = f"/{index}/_{kind}"
            times: dict[str, list[float]] = {name: [] for name in names}
            for warm in range(20):
                for name in names:
                    body = {"query": {"match": {"title": terms[warm % len(terms)]}}}
                    clients[name].post(path, json=body).raise_for_status()
            load = os.getloadavg()[0]
            cpu = {name: process_cpu_s(pid) for name, pid in pids.items()}
            for round_ in range(rounds):
                body = {"query": {"match": {"title": terms[round_ % len(terms)]}}}
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    started = time.perf_counter()
                    answer = clients[name].post(path, json=body)
                    times[name].append((time.perf_counter() - started) * 1000)
                    answer.raise_for_status()
            cpu = {name: process_cpu_s(pid) - cpu[name] for name, pid in pids.items()}
            direct = statistics.median(times["direct"])
            out: dict[str, Any] = {}
            for name in names[1:]:
                p50 = statistics.median(times[name])
                out[name] = {
                    "p50_ms": round(p50, 3),
                    "overhead_ms": round(p50 - direct, 3),
                    "overhead_share": round((p50 - direct) / direct, 3),
                    "cpu_ms_per_request": round(cpu[name] * 1000 / rounds, 3),
                }
            instances: dict[str, list[float]] = {}  # proxy, proxy2, ... -> proxy
            for name, side in out.items():
                instances.setdefault(name.rstrip("0123456789"), []).append(side["overhead_share"])
            medians = {
                label: round(statistics.median(shares), 3)
                for label, shares in instances.items()
                if len(shares) > 1
            }
            print(
                json.dumps(
                    {
                        "figure": "hop_floor_p50_ms",
                        "request": kind,
                        "direct_p50_ms": round(direct, 3),
                        "sides": out,
                        **({"median_overhead_share": medians} if medians else {}),
                        "rounds": rounds,
                        "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
                    }
                ),
                flush=True,
            )
    finally:
        for client in clients.values():
            client.close()


if __name__ == "__main__":
    raise SystemExit(main())
