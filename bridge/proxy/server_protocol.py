"""uvicorn's httptools protocol, sending each response's head together with its first body bytes.

uvicorn writes a response's status line and headers as soon as the app starts the response, and
the body in a second write: two system calls and two TCP segments for every small answer, which
is most of what the proxy relays. Here the head waits for the first body write (or the close) and
goes out in the same one. Nothing else changes: the head is never held for a `HEAD` request (no
body write follows it), and a response the app starts but never finishes still sends its head
before the connection closes.

It also relays plain pass-through reads itself, without an ASGI cycle (bridge.proxy.relay): a
request whose head allows it waits for its body (no task started), then goes to the app's
``Relay``; one the relay declines, or hands back after an upstream failure, runs through the app
as any other. An app without a relay (``app.state.relay``) gets uvicorn's behaviour.

Most relayed requests do not even reach uvicorn's parser: when no request is in progress on the
connection and the bytes in hold a whole simple request head (bridge.proxy.relay.read_request:
HTTP/1.1 GET/POST, plain header fields, a Content-Length body), the protocol applies the relay's
rules to it directly and relays it (``RelayedRead``: no scope of uvicorn's, no cycle, no event).
Its body may come in later reads (they are kept until it is whole); bytes of later requests wait
until the answer is out, then are read the same way. Everything else (a head split across reads,
anything odd, a request the rules send to the app, one the relay gives back) is fed to uvicorn's
parser exactly as it came, and ``next_app`` tells the cycle it starts whether the relay already
declined it.

`rerank-bridge serve` runs with ``http=`` this class (bridge.cli.serve); it needs httptools, the
parser uvicorn would pick anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from bridge.proxy.relay import MAX_BODY, RELAY_KEY, Handover, Relay, read_request, relay_of

_JOIN_BYTES = 64 * 1024


def write_joined(transport: asyncio.Transport, head: bytes, body: bytes) -> None:
    """A response head and body in one write (one TCP segment for a small answer); no copy of a
    large body: one vectored write."""
    if len(body) <= _JOIN_BYTES:
        transport.write(head + body)
    else:
        transport.writelines((head, body))


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
            write_joined(self._transport, head, data)
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


class RelayedCycle:
    """One request cycle as the relay sees it (bridge.proxy.relay.Client)."""

    __slots__ = ("body", "cycle", "default_headers", "protocol", "scope")

    def __init__(
        self, protocol: OneWriteHttpToolsProtocol, cycle: RequestResponseCycle, body: bytes
    ) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self.scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        self.body = body
        self.default_headers = cycle.default_headers

    def keep_alive(self) -> bool:
        return self.cycle.keep_alive

    def gone(self) -> bool:
        return self.cycle.disconnected or self.protocol.transport.is_closing()

    def write(self, head: bytes, body: bytes) -> None:
        write_joined(self.protocol.transport, head, body)

    def finish(self) -> None:
        """The answer is out: what uvicorn does after a response's last body message."""
        cycle = self.cycle
        cycle.response_started = True
        cycle.response_complete = True
        cycle.waiting_for_100_continue = False
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.protocol.transport.close()
        cycle.on_response()

    def hand_over(self, why: Handover) -> None:
        """Run the request through the app after all (its body is still in the cycle)."""
        self.scope[RELAY_KEY] = why
        self.protocol.run_app(self.cycle)


class RelayedRead:
    """A request the protocol read itself and the relay answers (bridge.proxy.relay.Client):
    uvicorn's parser never saw it, no scope of uvicorn's, no cycle."""

    __slots__ = ("body", "closing", "default_headers", "protocol", "raw", "scope")

    def __init__(
        self,
        protocol: OneWriteHttpToolsProtocol,
        scope: dict[str, Any],
        body: bytes,
        raw: bytes,
    ) -> None:
        self.protocol = protocol
        self.scope = scope
        self.body = body
        self.raw = raw  # the request's bytes, for uvicorn's parser if the app must answer it
        self.default_headers = protocol.server_state.default_headers
        self.closing = False  # the server shuts down: close after this answer

    def keep_alive(self) -> bool:
        return not self.closing

    def gone(self) -> bool:
        return self.protocol.transport.is_closing()

    def write(self, head: bytes, body: bytes) -> None:
        write_joined(self.protocol.transport, head, body)

    def finish(self) -> None:
        self.protocol.read_answered(self)

    def hand_over(self, why: Handover) -> None:
        self.protocol.read_handed_over(self, why)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose response cycles write head and body at once, and
    which relays plain pass-through reads without an ASGI cycle (bridge.proxy.relay)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's own access log would miss relayed requests: then everything takes the app
        self.relay: Relay | None = None if self.access_log else relay_of(self.app)
        self.pending: RequestResponseCycle | None = None  # a relay candidate awaiting its body
        # the fast path (``data_received``): requests read here, never fed to uvicorn's parser
        self.reads_here = (
            self.relay is not None and self.limit_concurrency is None and not self.root_path
        )
        self.at_rest = True  # uvicorn's parser holds no part of a request
        self.read: RelayedRead | None = None  # the request read here whose answer is awaited
        # bytes that came after it, parsed once it is answered; with no request out, the start
        # of one whose body is not all in yet
        self.held = b""
        self.next_app: Handover | bool | None = None  # the next cycle goes to the app (why)
        # the request that ``held`` starts, its head read: scope and where its body ends
        self.waiting: tuple[dict[str, Any], int] | None = None
        # the keep-alive timer, armed lazily (``on_response_complete``): when the connection
        # went idle (loop time), or -1 while a request is in
        self.idle_since = -1.0

    # -- keep-alive: one timer per idle spell at most, not a new one per request ---------------

    def _unset_keepalive_if_required(self) -> None:
        """A request comes in: the connection is busy. uvicorn cancels its keep-alive timer
        here and arms a new one after each answer (two timer operations a request); here an
        armed timer stays, and when it fires it finds the connection busy and stands down."""
        self.idle_since = -1.0

    def on_response_complete(self) -> None:
        """uvicorn's: count the request, resume reading, start a pipelined request or wait for
        the next one under the keep-alive timeout (a timer armed only if none is)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self.idle_since = -1.0
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        """The timer fired: close an idle connection whose time is up, wait out the rest of a
        later idle spell, or stand down for a busy one (its answer arms the timer again)."""
        self.timeout_keep_alive_task = None
        since = self.idle_since
        if since < 0:
            return
        rest = since + self.timeout_keep_alive - self.loop.time()
        if rest > 0:
            self.timeout_keep_alive_task = self.loop.call_later(rest, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def data_received(self, data: bytes) -> None:
        if self.read is not None:  # a request is out: what follows waits its turn
            self.held += data
            if len(self.held) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            return
        held = self.held
        if held:  # the start of a request whose body was not all in
            self.held = b""
            data = held + data
        if (
            self.reads_here
            and self.at_rest
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
        ):
            self._unset_keepalive_if_required()
            if self.read_here(data):
                return
        self.waiting = None
        super().data_received(data)
        self.next_app = None  # taken by the first request's cycle (or the request was refused)

    def read_here(self, data: bytes) -> bool:
        """Relay the request at the start of ``data`` without uvicorn's parser, scope and cycle,
        if it is a complete plain read (the same rules as the cycle's way below); False: uvicorn
        parses ``data`` (``next_app`` says when its first request must go to the app)."""
        relay = self.relay
        assert relay is not None
        waiting = self.waiting
        if waiting is not None:  # its head was read and allowed already
            self.waiting = None
            scope, end = waiting
        else:
            parsed = read_request(data, self.client)
            if parsed is None:
                return False  # not simple, or not all in: the cycle's way decides
            scope, end = parsed
            if not relay.plain_read(scope):
                self.next_app = True
                return False
        if len(data) < end:  # the head allows the relay: wait here for the rest of the body
            self.held = data  # (at most MAX_BODY and the head)
            self.waiting = (scope, end)
            return True
        body = data[end - scope["content_length"] : end]
        if not relay.plain_body(scope, body):
            self.next_app = True
            return False
        read = self.read = RelayedRead(self, scope, body, data[:end])
        if not relay.start(read):
            self.read = None
            self.next_app = scope.get(RELAY_KEY) or True
            return False
        if end < len(data):
            self.held = data[end:]
        return True

    def read_answered(self, read: RelayedRead) -> None:
        """The answer is out: what uvicorn does after a response, then the bytes that waited."""
        self.read = None
        self.relay.read_by_protocol += 1  # type: ignore[union-attr]
        if read.closing:
            self.transport.close()
        self.on_response_complete()  # counts it, resumes reading, arms the keep-alive timer
        held = self.held
        if held and not self.transport.is_closing():
            self.held = b""
            self.data_received(held)

    def read_handed_over(self, read: RelayedRead, why: Handover) -> None:
        """The relay gave up: uvicorn's parser reads the request after all, the app answers."""
        self.read = None
        data = read.raw + self.held
        self.held = b""
        if self.transport.is_closing():
            return
        self.next_app = why
        super().data_received(data)
        self.next_app = None

    def shutdown(self) -> None:
        read = self.read
        if read is not None:  # uvicorn sees no cycle in progress: close after the answer
            read.closing = True
            return
        held = self.held
        if held:  # a request still coming in: uvicorn's cycle finishes it, then closes
            self.held = b""
            self.waiting = None
            self.next_app = True
            super().data_received(held)
            self.next_app = None
        super().shutdown()

    def on_message_begin(self) -> None:
        self.at_rest = False
        super().on_message_begin()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        relay = self.relay
        to_app = self.next_app
        if to_app is not None:  # decided (or tried) by the fast path already
            self.next_app = None
            if isinstance(to_app, Handover):
                cycle.scope[RELAY_KEY] = to_app  # type: ignore[literal-required]
            super()._start_asgi_task(cycle, app)
        elif (
            relay is None
            or app is not self.app  # uvicorn's 503 over limit_concurrency
            or cycle.waiting_for_100_continue
            or not relay.plain_head(cycle.scope)  # type: ignore[arg-type]
        ):
            super()._start_asgi_task(cycle, app)
        elif not cycle.more_body:  # a pipelined request, in whole already
            self.relay_or_run(cycle)
        elif cycle is self.cycle:
            self.pending = cycle  # decided once the body is in (on_message_complete)
        else:
            super()._start_asgi_task(cycle, app)

    def run_app(self, cycle: RequestResponseCycle) -> None:
        super()._start_asgi_task(cycle, self.app)

    def relay_or_run(self, cycle: RequestResponseCycle) -> None:
        relay = self.relay
        assert relay is not None
        body = bytes(cycle.body)
        scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        if relay.plain_body(scope, body) and relay.start(RelayedCycle(self, cycle, body)):
            return
        self.run_app(cycle)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        pending = self.pending
        if pending is not None and len(pending.body) > MAX_BODY:
            self.pending = None  # too large to relay here: the app reads the rest
            self.run_app(pending)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.at_rest = True
        pending = self.pending
        if pending is not None and pending is self.cycle and not pending.more_body:
            self.pending = None
            self.relay_or_run(pending)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        timer = self.timeout_keep_alive_task
        if timer is not None:
            self.timeout_keep_alive_task = None
            timer.cancel()
        self.held = b""
        self.waiting = None
        pending = self.pending
        if pending is not None:  # gone before its body was in: the app sees the disconnect
            self.pending = None
            self.run_app(pending)

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


__all__ = ["HeadWithBody", "OneWriteHttpToolsProtocol", "RelayedCycle", "RelayedRead"]
