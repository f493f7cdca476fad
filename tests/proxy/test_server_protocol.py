"""The server protocol `rerank-bridge serve` runs: a response's head goes out with its first body
bytes, in one write (bridge.proxy.server_protocol).

uvicorn's protocol is driven here as uvicorn's own tests drive it: a transport that records every
write, HTTP bytes fed in, the app task run to its end. Real sockets: every other proxy test runs
on this protocol (tests/support/proxy_server.py).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import uvicorn
from starlette.types import Message, Receive, Scope, Send
from uvicorn.server import ServerState

from bridge.proxy.server_protocol import OneWriteHttpToolsProtocol
from tests.support.proxy_server import ProxyServer


class RecordingTransport:
    """What the protocol writes, one entry per write call; closing is recorded too."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.read_paused = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False

    def set_protocol(self, protocol: Any) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


def exchange(app: Any, request: bytes) -> RecordingTransport:
    """Feed one request to a fresh connection of the protocol; run the app to its end."""

    async def run() -> RecordingTransport:
        config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="critical")
        config.load()
        protocol = OneWriteHttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = RecordingTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(request)
        while protocol.tasks:
            await asyncio.gather(*protocol.tasks, return_exceptions=True)
        return transport

    return asyncio.run(run())


def answering(*bodies: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers or []})
        for i, body in enumerate(bodies):
            more = i < len(bodies) - 1
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


GET = b"GET /x HTTP/1.1\r\nHost: proxy\r\n\r\n"


def test_head_and_body_go_out_in_one_write() -> None:
    sent = exchange(answering(b'{"count":1}', headers=[(b"content-length", b"11")]), GET)
    assert len(sent.writes) == 1
    head, body = sent.writes[0].split(b"\r\n\r\n", 1)
    assert (head.startswith(b"HTTP/1.1 200 OK"), body) == (True, b'{"count":1}')


def test_a_streamed_answer_carries_its_head_in_the_first_chunk_only() -> None:
    sent = exchange(answering(b"ab", b"cd", b""), GET)  # no length: chunked
    head, first = sent.writes[0].split(b"\r\n\r\n", 1)
    assert [first, *sent.writes[1:]] == [b"2\r\nab\r\n", b"2\r\ncd\r\n", b"0\r\n\r\n"]
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in head


def test_an_empty_body_still_sends_the_head() -> None:
    sent = exchange(answering(b"", headers=[(b"content-length", b"0")]), GET)
    assert len(sent.writes) == 1
    assert sent.writes[0].endswith(b"\r\n\r\n")


def test_a_head_request_gets_its_head_without_a_body_write() -> None:
    app = answering(b"", headers=[(b"content-length", b"11")])
    sent = exchange(app, b"HEAD /x HTTP/1.1\r\nHost: proxy\r\n\r\n")
    assert len(sent.writes) == 1
    assert sent.writes[0].startswith(b"HTTP/1.1 200 OK")


def test_an_app_failing_after_the_start_still_sends_the_head_before_closing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("broke mid-answer")

    sent = exchange(app, GET)
    assert (len(sent.writes), sent.closed) == (1, True)
    assert sent.writes[0].startswith(b"HTTP/1.1 200 OK")


def test_100_continue_is_not_held_back() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    request = (
        b"POST /x HTTP/1.1\r\nHost: proxy\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
    )
    sent = exchange(app, request)
    assert sent.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(sent.writes) == 2
    assert sent.writes[1].startswith(b"HTTP/1.1 200 OK")
    assert seen[0]["body"] == b"hi"


def _ok_app() -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_keep_alive_closes_an_idle_connection_on_time_never_a_busy_one() -> None:
    """The keep-alive timer is armed once per idle spell (not cancelled and re-armed for each
    request): a connection in use for over twice the keep-alive time stays open, and one left
    idle is closed once its keep-alive time is up, not before."""
    with ProxyServer(_ok_app(), keep_alive_s=1) as server:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        with sock:
            for _ in range(6):  # 2.4 s of requests 0.4 s apart
                sock.sendall(GET)
                assert _answer(sock).startswith(b"HTTP/1.1 200 ")
                time.sleep(0.4)
            sock.sendall(GET)
            assert _answer(sock).startswith(b"HTTP/1.1 200 ")
            idle = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server
            waited = time.monotonic() - idle
    assert 0.9 <= waited <= 2.0, waited
