"""Two featureless HTTP/1.1 relays for `hop_floor.py --minimal-relays`: how little any relay
that frames HTTP adds on this host, in Python and compiled.

- ``MinimalRelay`` (run by ``serve``): asyncio + uvloop, one upstream connection per client
  connection, each request and each answer framed (Content-Length or chunked) and written
  whole, the byte scan for `rerank` a pass-through relay makes; no header rewriting, pooling,
  retries, timeouts, metrics or access log.
- the Go relay (``go_relay/main.go``): the same in one goroutine per connection, built here with
  the Go toolchain.

Neither is a proxy: they are floors. What `rerank-bridge serve` adds above them is its features'
price; what they add above the byte pipe is the price of reading HTTP at all.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import uvloop
from proxy_load import free_port  # a sibling script, not a package

GO_RELAY = Path(__file__).resolve().parent / "go_relay"
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)


def message_end(data: bytes) -> int:
    """Where the first whole HTTP/1.1 message in ``data`` ends, -1 when it is not all in."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    start = head_end + 4
    if _CHUNKED.search(data, 0, head_end + 2):
        at = start
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                return -1
            size = int(data[at:line_end].split(b";")[0], 16)
            at = line_end + 2 + size + 2
            if at > len(data):
                return -1
            if size == 0:
                return at
    length = _LENGTH.search(data, 0, head_end + 2)
    end = start + (int(length.group(1)) if length else 0)
    return end if end <= len(data) else -1


class MinimalRelay(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.back: asyncio.Transport | None = None
        self.reranks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        back, _ = await loop.create_connection(lambda: _Back(self), self.host, self.port)
        self.back = back  # type: ignore[assignment]
        self.data_received(b"")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.back is None:
            return
        while (end := message_end(self.buffer)) >= 0:
            request, self.buffer = self.buffer[:end], self.buffer[end:]
            if b"rerank" in request:
                self.reranks += 1  # the scan a pass-through relay makes; nothing here reranks
            self.back.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.back is not None:
            self.back.close()


class _Back(asyncio.Protocol):
    def __init__(self, front: MinimalRelay) -> None:
        self.front = front
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := message_end(self.buffer)) >= 0:
            answer, self.buffer = self.buffer[:end], self.buffer[end:]
            if self.front.transport is not None:
                self.front.transport.write(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.front.transport is not None:
            self.front.transport.close()


def serve(protocol: Callable[[str, int], asyncio.Protocol], upstream: str, port: int) -> None:
    """Run ``protocol(host, port of upstream)`` per client connection on ``port`` until killed
    (its own process, as a proxy is)."""
    parts = urlsplit(upstream)
    host, upstream_port = parts.hostname or "127.0.0.1", parts.port or 80

    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: protocol(host, upstream_port), "127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(run())


def started(argv: list[str], port: int, what: str) -> tuple[str, subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}", process
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{what} did not start")


def start_script(
    script: str, flag: str, upstream: str, what: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """``script flag upstream --port N`` in its own process on a free port: its URL, process."""
    port = free_port()
    argv = [sys.executable, script, flag, upstream, "--port", str(port)]
    return started(argv, port, what)


def start_go_relay(upstream: str, build_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Build the Go relay into ``build_dir`` and start it (the `go` toolchain is required)."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("--minimal-relays needs the Go toolchain (`go`) on PATH")
    binary = build_dir / "go_relay"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=GO_RELAY, check=True)
    parts = urlsplit(upstream)
    port = free_port()
    target = f"{parts.hostname or '127.0.0.1'}:{parts.port or 80}"
    argv = [str(binary), "-listen", f"127.0.0.1:{port}", "-upstream", target]
    return started(argv, port, "the Go relay")
