"""uvicorn's httptools protocol, sending each response's head together with its first body bytes.

uvicorn writes a response's status line and headers as soon as the app starts the response, and
the body in a second write: two system calls and two TCP segments for every small answer, which
is most of what the proxy relays. Here the head waits for the first body write (or the close) and
goes out in the same one. Nothing else changes: the head is never held for a `HEAD` request (no
body write follows it), and a response the app starts but never finishes still sends its head
before the connection closes.

`rerank-bridge serve` runs with ``http=`` this class (bridge.cli.serve); it needs httptools, the
parser uvicorn would pick anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_JOIN_BYTES = 64 * 1024


class HeadWithBody:
    """The connection's transport as one response cycle sees it: the first write after the
    response started (its head) is held and prefixed to the next write, or sent on close."""

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, cycle: RequestResponseCycle, transport: asyncio.Transport) -> None:
        self._cycle = cycle
        self._transport = transport
        self._held = False  # the head was seen (held or sent)
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_BYTES:
                self._transport.write(head + data)
            else:  # no copy of a large body: one vectored write
                self._transport.writelines((head, data))
        elif not self._held and self._cycle.response_started:
            self._held = True  # the response head: wait for the body's first bytes
            self._head = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else the cycle asks of its transport
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose response cycles write head and body at once."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # uvicorn internals: a release that renames them gets its plain protocol, not a failure
        if (
            cycle is not None
            and getattr(cycle, "response_started", None) is False  # no eager answer yet
            and getattr(cycle, "transport", None) is self.transport  # not wrapped already
            and cycle.scope["method"] != "HEAD"  # no body write would carry its head
        ):
            cycle.transport = HeadWithBody(cycle, self.transport)  # type: ignore[assignment]


__all__ = ["HeadWithBody", "OneWriteHttpToolsProtocol"]
