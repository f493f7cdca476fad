"""Two featureless HTTP/1.1 relays for `hop_floor.py --minimal-relays`: how little any relay
that frames HTTP adds on this host, in Python and compiled.

- ``serve_minimal``: asyncio + uvloop, one upstream connection per client connection, each
  request and each answer framed (Content-Length or chunked) and written whole, the byte scan for
  `rerank` a pass-through relay makes; no header rewriting, pooling, retries, timeouts, metrics or
  access log.
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
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

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


class _Front(asyncio.Protocol):
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
    def __init__(self, front: _Front) -> None:
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


def serve_minimal(upstream: str, port: int) -> None:
    """Run the minimal Python relay to ``upstream`` on ``port`` until killed."""
    parts = urlsplit(upstream)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: _Front(parts.hostname or "127.0.0.1", parts.port or 80), "127.0.0.1", port
        )
        await asyncio.Event().wait()

    uvloop.run(serve())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _started(argv: list[str], port: int, what: str) -> tuple[str, subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}", process
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{what} did not start")


def start_minimal(script: str, upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    """The minimal Python relay in its own process (``script --serve-minimal``)."""
    port = _free_port()
    argv = [sys.executable, script, "--serve-minimal", upstream, "--port", str(port)]
    return _started(argv, port, "the minimal Python relay")


def start_go_relay(upstream: str, build_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Build the Go relay into ``build_dir`` and start it (the `go` toolchain is required)."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("--minimal-relays needs the Go toolchain (`go`) on PATH")
    binary = build_dir / "go_relay"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=GO_RELAY, check=True)
    parts = urlsplit(upstream)
    port = _free_port()
    target = f"{parts.hostname or '127.0.0.1'}:{parts.port or 80}"
    argv = [str(binary), "-listen", f"127.0.0.1:{port}", "-upstream", target]
    return _started(argv, port, "the Go relay")
