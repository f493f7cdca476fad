"""Load benchmark for the rerank proxy (loopback only, bounded duration, stops by itself).

Figures, each with its peer from the same run, printed as JSON lines:

1. pass-through overhead (``overhead``): p50 through the proxy minus p50 direct, 1 client, for a
   plain `_search`, a `_count` and `_cluster/health`, each request sent direct and through every
   proxy in turn (interleaved); also as a share of the direct p50;
2. pass-through at ``--batch-clients`` (``passthrough``): plain `_search` throughput and p50,
   p99 through each proxy, alternating rounds (rotated order), and where the machine's CPU went
   per request; ``--load-client raw`` drives it with raw keep-alive connections (httpx costs
   more CPU per request than the proxy and the engine together on a 2-core host);
3. micro-batching (``batching``): reranked searches/s with batching on vs off (16 clients, no
   score cache);
4. load (``load``): 32 clients for 60 s of reranked searches through one proxy: errors, p50, p99.

``--baseline-repo DIR``: a checkout of other code (e.g. ``git archive <commit> | tar -x -C DIR``)
run as a second proxy with this venv, so figures 1 and 2 compare before/after in one session.

The proxy runs as a real `rerank-bridge serve` subprocess (not in this process, which would share
the GIL with the load generator). Needs a running Elasticsearch/OpenSearch:

    export RERANK_BRIDGE_TEST_ES_URL=http://127.0.0.1:9200   # or --upstream URL
    .venv/bin/python benchmarks/proxy_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RERANK_BRIDGE_SHARED", REPO.parent / "shared"))
HOMEDEPOT = SHARED / "data" / "homedepot"
TRAINED = SHARED / "models" / "homedepot-minilm-l6-ce"
NANO = REPO / ".cache" / "models" / "cross-nano"


def emit(**record: Any) -> None:
    # the machine is shared: every figure says how busy it was while measured
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(record), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def products(limit: int) -> list[str]:
    path = HOMEDEPOT / "products.jsonl"
    if not path.is_file():
        words = ["cordless", "drill", "hammer", "hose", "paint", "brush", "saw", "ladder", "valve"]
        return [f"{words[i % 9]} {words[(i * 7) % 9]} model {i}" for i in range(limit)]
    titles = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            titles.append(json.loads(line)["title"])
            if len(titles) >= limit:
                break
    return titles


def queries(limit: int) -> list[str]:
    path = HOMEDEPOT / "judgments.tsv"
    if not path.is_file():
        return ["drill", "garden hose", "paint brush", "ladder", "saw blade", "shower valve"]
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            seen.setdefault(line.split("\t", 1)[0], None)
            if len(seen) >= limit:
                break
    return list(seen)


def load_index(upstream: str, titles: list[str]) -> str:
    index = f"bench-proxy-{uuid.uuid4().hex[:8]}"
    mapping = {"mappings": {"properties": {"title": {"type": "text"}}}}
    httpx.put(f"{upstream}/{index}", json=mapping, timeout=60).raise_for_status()
    for start in range(0, len(titles), 2000):
        lines = []
        for title in titles[start : start + 2000]:
            lines += ['{"index":{}}', json.dumps({"title": title})]
        httpx.post(
            f"{upstream}/{index}/_bulk",
            content="\n".join(lines) + "\n",
            headers={"Content-Type": "application/x-ndjson"},
            timeout=120,
        ).raise_for_status()
    httpx.post(f"{upstream}/{index}/_refresh", timeout=60).raise_for_status()
    return index


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_s() -> float:
    """CPU seconds all cores spent outside idle/iowait so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


class CpuSplit:
    """Where the machine's CPU went during a run: the proxy, this load generator, the rest."""

    def __init__(self, proxy_pid: int) -> None:
        self.proxy_pid = proxy_pid
        self.proxy = self.generator = self.machine = 0.0

    def measure(self, run: Any) -> Any:
        def snapshot() -> tuple[float, float, float]:
            times = os.times()
            return process_cpu_s(self.proxy_pid), times.user + times.system, machine_busy_s()

        before = snapshot()
        result = run()
        after = snapshot()
        self.proxy += after[0] - before[0]
        self.generator += after[1] - before[1]
        self.machine += after[2] - before[2]
        return result

    def per_request_ms(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        rest = self.machine - self.proxy - self.generator
        return {
            "proxy": round(self.proxy * 1000 / requests, 2),
            "load_generator": round(self.generator * 1000 / requests, 2),
            "engine_and_rest": round(rest * 1000 / requests, 2),
        }


def loopback_upstream(parser: argparse.ArgumentParser, url: str | None) -> str:
    """The upstream URL without its trailing slash; load is only ever sent to loopback nodes."""
    if not url:
        parser.error("give --upstream URL or set RERANK_BRIDGE_TEST_ES_URL (a running node)")
    upstream = url.rstrip("/")
    if not upstream.startswith(("http://127.", "http://localhost")):
        parser.error("loopback upstreams only")
    return upstream


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ProxyProcess:
    """`rerank-bridge serve` in a subprocess with its own settings file."""

    def __init__(
        self,
        upstream: str,
        model: str,
        *,
        batching: bool | dict[str, Any],
        cache_size: int | None = 0,
        scorer: dict[str, Any] | None = None,
        workers: int = 1,
        repo: Path = REPO,
        launcher: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``cache_size`` 0 (default): every pair tokenized and scored, as a cache would flatter
        both sides of a comparison; None: the proxy's own default; ``scorer``: that whole
        section instead; ``repo``: the checkout whose `bridge` package runs; ``launcher``: the
        interpreter's arguments that run the CLI (default ``-m bridge``); ``env``: added to
        the environment."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings: dict[str, dict[str, Any]] = {
            "upstream": {"url": upstream},
            # a dict: the whole batching section (e.g. with model_nice)
            "batching": batching if isinstance(batching, dict) else {"enabled": batching},
            "rerank": {"model": model, "fields": ["title"], "window_size": 20, "timeout_ms": 30000},
        }
        if scorer is not None:
            settings["scorer"] = scorer
        elif cache_size is not None:
            settings["scorer"] = {"cache_size": cache_size, "token_cache_bytes": 0}
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
            config.write(_toml(settings))
        self._config_path = config.name
        env = {**os.environ, "RERANK_BRIDGE_OFFLINE": "1", **(env or {})}
        self.log_path = Path(tempfile.gettempdir()) / f"rerank-bridge-bench-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.keep_log = False  # set when a run had errors: the log says why
        self._process = subprocess.Popen(
            [
                sys.executable,
                *(launcher or ["-m", "bridge"]),
                "serve",
                "--config",
                self._config_path,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file: an unread pipe would fill up and stall the proxy
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SystemExit(f"proxy exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/_bridge/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("proxy did not become healthy")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
        os.unlink(self._config_path)
        self._log.close()
        if not self.keep_log:
            self.log_path.unlink(missing_ok=True)


def _toml(settings: dict[str, Any]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def search_body(query: str, rerank: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"query": {"match": {"title": query}}, "size": 10}
    if rerank:
        body["rerank"] = {}
    return body


def overhead(
    upstream: str,
    proxies: dict[str, str],
    index: str,
    terms: list[str],
    rounds: int,
    pids: dict[str, int] | None = None,
    *,
    raw: bool = False,
) -> None:
    """Sequential requests, 1 client: each one direct and through every proxy, same request;
    for a plain `_search`, a `_count` and `_cluster/health`. Who goes first rotates each round:
    the same request sent again right after can be cheaper for the engine (with direct always
    first, `_count` came out faster through either proxy than direct)."""
    kinds = ("search", "count", "health")
    bases = {"direct": upstream, **proxies}
    times: dict[str, dict[str, list[float]]] = {k: {b: [] for b in bases} for k in kinds}
    cpu_before = {name: process_cpu_s(pid) for name, pid in (pids or {}).items()}
    client_kind = "raw" if raw else "httpx"
    if raw:
        asyncio.run(_overhead_raw(bases, index, terms, rounds, times))
    else:
        _overhead_httpx(bases, index, terms, rounds, times)
    if cpu_before:  # the proxies' own CPU (all threads) per request they relayed, all kinds
        emit(
            figure="passthrough_cpu_ms_per_request",
            client=client_kind,
            proxies={
                name: round((process_cpu_s(pid) - cpu_before[name]) * 1000 / (rounds * 3), 3)
                for name, pid in (pids or {}).items()
            },
            requests=rounds * 3,
        )
    for kind in kinds:
        direct = statistics.median(times[kind]["direct"])
        per_proxy = {}
        for name in proxies:
            p50 = statistics.median(times[kind][name])
            per_proxy[name] = {
                "p50_ms": round(p50, 3),
                "overhead_ms": round(p50 - direct, 3),
                "overhead_share": round((p50 - direct) / direct, 3),
            }
        emit(
            figure="passthrough_overhead_ms_p50",
            client=client_kind,
            request=kind,
            value=per_proxy["proxy"]["overhead_ms"],
            direct_p50_ms=round(direct, 3),
            proxies=per_proxy,
            requests=rounds,
            target="<= 15 % of the direct p50 (search, count)",
        )


def _overhead_requests(index: str, term: str) -> dict[str, tuple[str, str, Any]]:
    query = search_body(term, rerank=False)
    return {
        "search": ("POST", f"/{index}/_search", query),
        "count": ("POST", f"/{index}/_count", {"query": query["query"]}),
        "health": ("GET", "/_cluster/health", None),
    }


def _overhead_httpx(
    bases: dict[str, str],
    index: str,
    terms: list[str],
    rounds: int,
    times: dict[str, dict[str, list[float]]],
) -> None:
    names = list(bases)
    with httpx.Client(timeout=30) as client:
        for i in range(rounds):
            requests = _overhead_requests(index, terms[i % len(terms)])
            order = names[i % len(names) :] + names[: i % len(names)]
            for kind, (method, path, body) in requests.items():
                for name in order:
                    started = time.perf_counter()
                    client.request(method, f"{bases[name]}{path}", json=body).raise_for_status()
                    times[kind][name].append((time.perf_counter() - started) * 1000)


async def _overhead_raw(
    bases: dict[str, str],
    index: str,
    terms: list[str],
    rounds: int,
    times: dict[str, dict[str, list[float]]],
) -> None:
    """As _overhead_httpx, over one raw keep-alive connection per side (_RawConnection)."""
    loop = asyncio.get_running_loop()
    names = list(bases)
    conns: dict[str, _RawConnection] = {}
    for name, url in bases.items():
        host, port = url.split("//", 1)[1].split(":")
        _, conns[name] = await loop.create_connection(_RawConnection, host, int(port))
    try:
        for i in range(rounds):
            requests = _overhead_requests(index, terms[i % len(terms)])
            order = names[i % len(names) :] + names[: i % len(names)]
            for kind, (method, path, body) in requests.items():
                for name in order:
                    request = _raw_request(method, path, bases[name], body)
                    started = time.perf_counter()
                    status = await conns[name].exchange(request)
                    if status != 200:
                        raise SystemExit(f"{name} {method} {path}: HTTP {status}")
                    times[kind][name].append((time.perf_counter() - started) * 1000)
    finally:
        for conn in conns.values():
            if conn.transport is not None:
                conn.transport.close()


def _raw_request(method: str, path: str, url: str, body: Any, *, gzip: bool = False) -> bytes:
    """The request's bytes; ``gzip``: ask for a gzip answer, as httpx and browsers do."""
    host = url.split("//", 1)[1].encode()
    accept = b"accept-encoding: gzip\r\n" if gzip else b""
    if body is None:
        return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (
            method.encode(),
            path.encode(),
            host,
            accept,
        )
    content = json.dumps(body).encode()
    return (
        b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
        b"%scontent-length: %d\r\n\r\n%s"
        % (method.encode(), path.encode(), host, accept, len(content), content)
    )


def passthrough_load(
    proxies: dict[str, str],
    index: str,
    terms: list[str],
    args: argparse.Namespace,
    pids: dict[str, int] | None = None,
    *,
    raw: bool = False,
    repeat: int = 1,
) -> None:
    """Plain searches at ``--batch-clients`` through each proxy, alternating short rounds; who
    goes first rotates each round (drift in the engine's state hits every proxy alike). With
    ``pids``: where the machine's CPU went per request (the proxy, this load generator, the
    rest: the engine) for each proxy. ``raw``: the raw-connection load generator (drive_raw)."""
    rounds = args.passthrough_rounds
    runs = {name: Run() for name in proxies}
    names = list(proxies)
    cpu = {name: CpuSplit(pid) for name, pid in (pids or {}).items() if name in proxies}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            url = proxies[name]
            duration = args.batch_seconds / rounds

            def drive_one(url: str = url, duration: float = duration) -> Run:
                if raw:
                    return asyncio.run(drive_raw(url, index, terms, args.batch_clients, duration))
                return asyncio.run(drive(url, index, terms, args.batch_clients, duration, False))

            runs[name] += cpu[name].measure(drive_one) if name in cpu else drive_one()
    summaries = {name: run.summary() for name, run in runs.items()}
    for name, split in cpu.items():
        summaries[name]["cpu_ms_per_request"] = split.per_request_ms(len(runs[name].latencies))
    base = summaries.get("baseline")
    emit(
        figure="passthrough_load",
        clients=args.batch_clients,
        rounds=rounds,
        client="raw" if raw else "httpx",
        repeat=repeat,
        value=(
            round(summaries["proxy"]["throughput_rps"] / max(base["throughput_rps"], 1e-9), 3)
            if base
            else None
        ),
        proxies=summaries,
        target="no worse than the baseline (throughput, p50)",
    )


async def drive(
    url: str, index: str, terms: list[str], clients: int, duration_s: float, rerank: bool
) -> Run:
    """``clients`` concurrent loops of searches for ``duration_s``."""

    def request(i: int) -> tuple[str, dict[str, Any]]:
        return f"/{index}/_search", search_body(terms[i % len(terms)], rerank)

    return await drive_requests(url, request, clients, duration_s)


async def drive_requests(
    url: str,
    request: Callable[[int], tuple[str, dict[str, Any]]],
    clients: int,
    duration_s: float,
) -> Run:
    """``clients`` concurrent loops for ``duration_s`` POSTing ``request(i)`` (path, JSON body)
    for i = 0, 1, 2, ... spread over the loops; latencies of successful requests."""
    run = Run()
    stop_at = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def loop(worker: int) -> None:
            i = worker
            while time.monotonic() < stop_at:
                path, body = request(i)
                i += clients
                started = time.perf_counter()
                try:
                    response = await client.post(f"{url}{path}", json=body)
                except httpx.HTTPError as exc:
                    run.count(run.errors, type(exc).__name__)
                    continue
                if response.status_code != 200:
                    run.count(run.errors, str(response.status_code))
                    continue
                run.count(run.statuses, response.headers.get("x-rerank-status", "none"))
                run.latencies.append((time.perf_counter() - started) * 1000)

        began = time.monotonic()
        await asyncio.gather(*(loop(w) for w in range(clients)))
        run.seconds = time.monotonic() - began
    return run


class _RawConnection(asyncio.Protocol):
    """One keep-alive client connection that only frames answers (Content-Length or chunked):
    a load generator costing a fraction of httpx's CPU per request, so that at 16 clients on a
    2-core host the figure is the proxy's and the engine's, not mostly the client's."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.answer: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.answer is None or self.answer.done():
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            value = head[at + 17 :].split(b"\r\n", 1)[0]
            if len(self.buffer) < end + 4 + int(value):
                return
        elif not self.buffer.endswith(b"0\r\n\r\n"):  # chunked: the last chunk is in
            return
        self.buffer.clear()
        self.answer.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("connection lost"))

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer


async def drive_raw(url: str, index: str, terms: list[str], clients: int, duration_s: float) -> Run:
    """As ``drive`` (plain searches, ``clients`` loops, ``duration_s``) with raw connections
    (``_RawConnection``) instead of httpx: same requests, a much cheaper client."""
    host, port = url.split("//", 1)[1].split(":")
    requests = []
    for term in terms:
        body = json.dumps(search_body(term, rerank=False)).encode()
        requests.append(
            b"POST /%s/_search HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (index.encode(), host.encode(), len(body), body)
        )
    run = Run()
    loop = asyncio.get_running_loop()
    stop_at = time.monotonic() + duration_s

    async def one(worker: int) -> None:
        _, conn = await loop.create_connection(_RawConnection, host, int(port))
        i = worker
        try:
            while time.monotonic() < stop_at and not conn.lost:
                request = requests[i % len(requests)]
                i += clients
                started = time.perf_counter()
                try:
                    status = await conn.exchange(request)
                except ConnectionError as exc:
                    run.count(run.errors, type(exc).__name__)
                    return
                if status != 200:
                    run.count(run.errors, str(status))
                    continue
                run.count(run.statuses, "passthrough")
                run.latencies.append((time.perf_counter() - started) * 1000)
        finally:
            if conn.transport is not None:
                conn.transport.close()

    began = time.monotonic()
    await asyncio.gather(*(one(w) for w in range(clients)))
    run.seconds = time.monotonic() - began
    return run


class Run:
    """Latencies, errors and rerank statuses of one or more load runs (merged with ``+``)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.seconds = 0.0

    @staticmethod
    def count(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1

    def __add__(self, other: Run) -> Run:
        merged = Run()
        merged.latencies = self.latencies + other.latencies
        for source in (self, other):
            for key, value in source.errors.items():
                merged.errors[key] = merged.errors.get(key, 0) + value
            for key, value in source.statuses.items():
                merged.statuses[key] = merged.statuses.get(key, 0) + value
        merged.seconds = self.seconds + other.seconds
        return merged

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "requests": len(lat),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "rerank_status": self.statuses,
            "throughput_rps": round(len(lat) / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(percentile(lat, 0.5), 2) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 2) if lat else None,
            "seconds": round(self.seconds, 1),
        }


def batching(
    on: ProxyProcess, off: ProxyProcess, index: str, terms: list[str], args: argparse.Namespace
) -> None:
    """Batching on vs off in alternating short rounds, so drifting machine load hits both."""
    rounds = 4
    slice_s = args.batch_seconds / rounds
    batched, unbatched = Run(), Run()
    on_cpu, off_cpu = CpuSplit(on.pid), CpuSplit(off.pid)
    for _ in range(rounds):
        batched += on_cpu.measure(
            lambda: asyncio.run(drive(on.url, index, terms, args.batch_clients, slice_s, True))
        )
        unbatched += off_cpu.measure(
            lambda: asyncio.run(drive(off.url, index, terms, args.batch_clients, slice_s, True))
        )
    on_stats, off_stats = batched.summary(), unbatched.summary()
    on_stats["cpu_ms_per_request"] = on_cpu.per_request_ms(len(batched.latencies))
    off_stats["cpu_ms_per_request"] = off_cpu.per_request_ms(len(unbatched.latencies))
    emit(
        figure="micro_batching_speedup",
        value=round(on_stats["throughput_rps"] / max(off_stats["throughput_rps"], 1e-9), 2),
        clients=args.batch_clients,
        batching_on=on_stats,
        batching_off=off_stats,
        target=">= 1.5x",
    )


def load(on: ProxyProcess, index: str, terms: list[str], args: argparse.Namespace) -> None:
    before = _batch_counts(on.url)
    result = asyncio.run(
        drive(on.url, index, terms, args.load_clients, args.load_seconds, rerank=True)
    )
    after = _batch_counts(on.url)
    runs, searches = after[0] - before[0], after[1] - before[1]
    if result.errors:
        on.keep_log = True
    emit(
        figure="load_reranked_search",
        clients=args.load_clients,
        target="0 errors",
        model_runs=runs,
        searches_per_model_run=round(searches / runs, 2) if runs else None,
        proxy_log=str(on.log_path) if on.keep_log else None,
        **result.summary(),
    )


def _batch_counts(url: str) -> tuple[float, float]:
    """(model runs, searches scored) so far, from the proxy's own metrics."""
    runs = searches = 0.0
    for line in httpx.get(f"{url}/_bridge/metrics").text.splitlines():
        if line.startswith("rerank_bridge_batch_requests_count"):
            runs += float(line.rsplit(" ", 1)[1])
        elif line.startswith("rerank_bridge_batch_requests_sum"):
            searches += float(line.rsplit(" ", 1)[1])
    return runs, searches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default=os.environ.get("RERANK_BRIDGE_TEST_ES_URL"))
    # default: the FlashRank default architecture (TinyBERT-L2, built by `make models`); the
    # trained MiniLM-L6 in ../shared is ~10x more compute per pair
    parser.add_argument("--model", default=str(NANO if NANO.is_dir() else TRAINED))
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--load-clients", type=int, default=32)
    parser.add_argument("--batch-seconds", type=float, default=20)
    parser.add_argument("--batch-clients", type=int, default=16)
    parser.add_argument("--overhead-rounds", type=int, default=400)
    parser.add_argument(
        "--passthrough-rounds",
        type=int,
        default=4,
        help="alternating rounds of the pass-through part (--batch-seconds split among them)",
    )
    parser.add_argument(
        "--parts",
        default="overhead,passthrough,batching,load",
        help="comma list of the figures to measure",
    )
    parser.add_argument(
        "--baseline-repo",
        type=Path,
        default=None,
        help="a checkout of other code, run as a second proxy for before/after pass-through",
    )
    parser.add_argument(
        "--load-client",
        choices=["httpx", "raw", "both"],
        default="httpx",
        help="overhead and pass-through parts: httpx (1.6-1.8 ms of CPU per request on this "
        "host, most of the machine at 16 clients), raw keep-alive connections that only frame "
        "answers (0.05 ms: the figure is the proxy's and the engine's), or both in turn",
    )
    parser.add_argument(
        "--passthrough-repeat",
        type=int,
        default=1,
        help="measure the pass-through part this many times (one figure each)",
    )
    parser.add_argument(
        "--other-repo",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another checkout run as one more proxy named NAME in the overhead and "
        "pass-through parts (repeatable), e.g. the code before an earlier change",
    )
    args = parser.parse_args()
    upstream = loopback_upstream(parser, args.upstream)
    others = [spec.split("=", 1) for spec in args.other_repo]
    if any(len(pair) != 2 or not pair[0] for pair in others):
        parser.error("--other-repo takes NAME=DIR")

    terms = queries(2000)
    index = load_index(upstream, products(args.docs))
    emit(
        setup="index",
        index=index,
        docs=args.docs,
        queries=len(terms),
        model=args.model,
        cpus=os.cpu_count(),
    )
    procs: list[ProxyProcess] = []
    try:
        on = ProxyProcess(upstream, args.model, batching=True)
        off = ProxyProcess(upstream, args.model, batching=False)
        procs += [on, off]
        passing = {"proxy": on.url}
        pids = {"proxy": on.pid}
        if args.baseline_repo is not None:
            baseline = ProxyProcess(upstream, args.model, batching=True, repo=args.baseline_repo)
            procs.append(baseline)
            passing["baseline"] = baseline.url
            pids["baseline"] = baseline.pid
        for name, directory in others:
            other = ProxyProcess(upstream, args.model, batching=True, repo=Path(directory))
            procs.append(other)
            passing[name] = other.url
            pids[name] = other.pid
        for proxy in procs:
            proxy.wait_ready()
        for proxy in procs:  # warm up: model loaded, sessions optimised, pools open
            asyncio.run(drive(proxy.url, index, terms, 4, 3, rerank=True))
            asyncio.run(drive(proxy.url, index, terms, 4, 1, rerank=False))

        parts = set(args.parts.split(","))
        if "overhead" in parts:
            for kind in ("httpx", "raw"):
                if args.load_client in (kind, "both"):
                    overhead(
                        upstream,
                        passing,
                        index,
                        terms,
                        args.overhead_rounds,
                        pids,
                        raw=kind == "raw",
                    )
        if "passthrough" in parts:
            for repeat in range(1, args.passthrough_repeat + 1):
                for kind in ("httpx", "raw"):
                    if args.load_client in (kind, "both"):
                        passthrough_load(
                            passing, index, terms, args, pids, raw=kind == "raw", repeat=repeat
                        )
        if "batching" in parts:
            batching(on, off, index, terms, args)
        off.stop()
        procs.remove(off)
        if "load" in parts:
            load(on, index, terms, args)
    finally:
        for proxy in procs:
            proxy.stop()
        httpx.delete(f"{upstream}/{index}", timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
