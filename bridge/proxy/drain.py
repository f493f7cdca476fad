"""Shutting down without dropping a request: SIGTERM drains, then the server stops.

On SIGTERM (or Ctrl-C) the proxy first *lingers*: it keeps serving, answers health with 503
``draining`` (load balancers take it out of rotation) and sends ``Connection: close`` with every
response, so clients finish their keep-alive connections at a response boundary instead of
sending into a socket about to close. The linger lasts ``limits.drain_linger_s`` and then until
requests stop arriving (at most ``limits.drain_s``). Then uvicorn's graceful shutdown runs: the
listening socket closes (new connections are refused, which every client retries elsewhere),
in-flight requests finish, and whatever still runs after ``limits.drain_s`` more is cancelled.
A second Ctrl-C skips the linger; a third forces the exit.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class Drain:
    """Whether this process is draining: set by the signal handler, read by the app."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True


class InFlight:
    """Requests the server protocol relays itself (bridge.proxy.relay): no asyncio task of
    uvicorn's counts them, so the linger below asks here too."""

    def __init__(self) -> None:
        self.running = 0


RELAYS = InFlight()

# SIGTERM is per process, so is draining: `serve` workers share this one (tests make their own)
PROCESS_DRAIN = Drain()


class DrainMiddleware:
    """While draining, every response asks the client to close its connection."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.started:
                headers = [(n, v) for n, v in message.get("headers", []) if n != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a linger before its graceful shutdown (see the module text).

    The linger lasts at least ``linger_s`` and until no request is in flight and none has arrived
    for ``QUIET_S`` (a load balancer has moved the traffic off), at most ``max_linger_s``:
    closing the listening socket while clients still connect refuses them, and the kernel resets
    connections already waiting in its backlog.
    """

    QUIET_S = 0.5

    def __init__(
        self, config: uvicorn.Config, *, drain: Drain, linger_s: float, max_linger_s: float
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.linger_s = linger_s
        self.max_linger_s = max(linger_s, max_linger_s)
        self._began: float | None = None
        self._signal: tuple[int, FrameType | None] | None = None
        self._requests = 0
        self._quiet_since = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.started or self.linger_s <= 0:
            super().handle_exit(sig, frame)
            return
        self.drain.start()
        self._began = self._quiet_since = time.monotonic()
        self._signal = (sig, frame)
        logger.info("draining: health 503 and Connection: close until the traffic stops")

    async def on_tick(self, counter: int) -> bool:
        if self._began is not None and self._signal is not None:
            now = time.monotonic()
            if self.server_state.total_requests != self._requests:
                self._requests = self.server_state.total_requests
                self._quiet_since = now
            lingered = now - self._began
            idle = not self.server_state.tasks and not RELAYS.running  # none in flight
            quiet = idle and now - self._quiet_since >= self.QUIET_S
            if lingered >= self.max_linger_s or (lingered >= self.linger_s and quiet):
                self._began = None
                super().handle_exit(*self._signal)
        return await super().on_tick(counter)


__all__ = ["PROCESS_DRAIN", "RELAYS", "Drain", "DrainMiddleware", "DrainingServer", "InFlight"]
