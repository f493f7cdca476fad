"""A small HTTP/1.1 client connection pool for one upstream node: asyncio protocol + httptools.

The proxy's hot path is one exchange with the engine per request. httpcore (pure-Python h11
parsing, anyio cancel scopes around every read, pool bookkeeping under locks) cost more CPU per
exchange than the rest of a pass-through; this pool does only what the proxy needs, with the C
parser uvicorn already uses (httptools/llhttp):

- keep-alive connections, most recently used first, at most ``max_connections`` (a request waits
  for a free one up to the pool timeout), idle ones dropped after ``keepalive_expiry`` or when
  the engine closes them;
- TLS through the node's ``ssl.SSLContext`` (SNI = host);
- request bodies as bytes (one write with the head) or streamed (chunked framing when the
  headers say `Transfer-Encoding: chunked`), written with flow control;
- response bodies streamed with back-pressure (reading pauses past 256 KiB unread);
- timeouts per phase (``connect``/``read``/``write``/``pool``, as httpcore takes them).

Failures raise httpcore's exception types (ConnectError, ConnectTimeout, ReadTimeout,
WriteTimeout, PoolTimeout, ReadError, RemoteProtocolError), so the retry rules in
bridge.proxy.upstream read the same. A connection is reused only after a complete exchange the
engine allows to keep alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import cast

import httpcore
import httptools

_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_WRITE_HIGH_WATER = 256 * 1024

Headers = list[tuple[bytes, bytes]]


class _Exchange:
    """One response being parsed: httptools' callbacks land here."""

    def __init__(self, conn: _Connection, head_only: bool, *, parse: bool = True) -> None:
        self.conn = conn
        self.head_only = head_only
        # ``parse=False``: a subclass frames the answer itself (``feed``) and makes a parser only
        # when it has to
        self.parser: httptools.HttpResponseParser | None = None
        if parse:
            self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: Headers = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.started = False  # any response byte seen
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def feed(self, data: bytes) -> None:
        """Answer bytes as they arrive (httptools' callbacks follow)."""
        assert self.parser is not None
        self.parser.feed_data(data)

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # interim answer: the real one follows
            return
        self.status = status
        self.head_done = True
        if self.head_only:  # a HEAD answer has no body whatever its Content-Length says
            self.finish()
        self.wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER:
            self.conn.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim (1xx) answer
            self.headers = []
            return
        self.finish()
        self.wake()

    # -- state ----------------------------------------------------------------------------------

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.keep_alive = self.parser is not None and self.parser.should_keep_alive()
            self.conn.exchange = None

    def fail(self, error: BaseException) -> None:
        if self.error is None and not self.done:
            self.error = error
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None, on_timeout: type[Exception]) -> None:
        """Until the next callback (or the connection's end); ``on_timeout`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = (
            loop.call_later(timeout, self._expire, waiter, on_timeout)
            if timeout is not None
            else None
        )
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    @staticmethod
    def _expire(waiter: asyncio.Future[None], on_timeout: type[Exception]) -> None:
        if not waiter.done():
            waiter.set_exception(on_timeout("timed out"))


class _Connection(asyncio.Protocol):
    def __init__(self, pool: H1Pool) -> None:
        self.pool = pool
        # made on its loop (``H1Pool._connect``), kept for the relay's timers: asking for the
        # running loop costs a system call (CPython checks the process id)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reading_paused = False
        self.counted = True  # still in its pool's count of connections
        # the relay's read timer for its exchanges on this connection (bridge.proxy.relay)
        self.watch: asyncio.TimerHandle | None = None
        self.watched: _Exchange | None = None
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        exchange.started = True
        try:
            exchange.feed(data)
        except httptools.HttpParserError as exc:
            exchange.fail(httpcore.RemoteProtocolError(f"invalid HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is not None:
            if exchange.head_done and not _framed(exchange.headers):
                exchange.finish()  # a body delimited by the end of the connection
                exchange.keep_alive = False
                exchange.wake()
            elif not exchange.started:
                exchange.fail(
                    httpcore.RemoteProtocolError("Server disconnected without sending a response.")
                )
            else:
                exchange.fail(httpcore.ReadError(f"connection lost mid-answer: {exc or 'EOF'}"))
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_exception(httpcore.WriteError("connection lost while sending"))
        self.pool.forget(self)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- used by the pool ---------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    async def drain(self, timeout: float | None) -> None:
        writable = self._writable
        if writable is None or writable.done():
            if writable is not None:
                writable.result()  # a lost connection raises here
            return
        try:
            await asyncio.wait_for(asyncio.shield(writable), timeout)
        except asyncio.TimeoutError:
            raise httpcore.WriteTimeout("timed out while sending the request body") from None

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


def _framed(headers: Headers) -> bool:
    return any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in headers)


def _chunked(headers: Headers) -> bool:
    return any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers)


class H1Response:
    """Status, raw headers and the body stream of one answer; ``aclose`` frees the connection."""

    def __init__(self, pool: H1Pool, exchange: _Exchange, read_timeout: float | None) -> None:
        self.status = exchange.status
        self.headers = exchange.headers
        self.stream: AsyncIterable[bytes] = self._body()
        self._pool = pool
        self._exchange = exchange
        self._read_timeout = read_timeout
        self._closed = False

    async def _body(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        conn = exchange.conn
        try:
            while True:
                if exchange.chunks:
                    chunk = exchange.chunks.popleft()
                    exchange.buffered -= len(chunk)
                    if exchange.buffered < _LOW_WATER:
                        conn.resume_reading()
                    yield chunk
                elif exchange.error is not None:
                    raise exchange.error
                elif exchange.done:
                    return
                else:
                    await exchange.wait(self._read_timeout, httpcore.ReadTimeout)
        finally:  # read to the end, failed, or abandoned: the connection goes back or closes
            self._release()

    async def aclose(self) -> None:
        self._release()

    def take_complete(self) -> bytes | None:
        """The whole body if it is in already (the connection goes back to the pool), else None
        (then read ``stream``)."""
        exchange = self._exchange
        if self._closed or not exchange.done or exchange.error is not None:
            return None
        body = b"".join(exchange.chunks)
        exchange.chunks.clear()
        exchange.buffered = 0
        exchange.conn.resume_reading()
        self._release()
        return body

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        exchange = self._exchange
        reusable = exchange.done and exchange.error is None and exchange.keep_alive
        self._pool.release(exchange.conn, reusable=reusable)


class H1Pool:
    """Keep-alive HTTP/1.1 connections to one host and port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_connections = max(1, max_connections)
        self.keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._count = 0  # connections open or opening
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        content: bytes | AsyncIterable[bytes] | None,
        timeouts: Mapping[str, float | None],
    ) -> H1Response:
        """Send one request; returns once the answer's status and headers are in."""
        conn = await self._acquire(timeouts.get("pool"), timeouts.get("connect"))
        exchange = _Exchange(conn, head_only=method == b"HEAD")
        conn.exchange = exchange
        try:
            head = b"".join(
                [
                    method,
                    b" ",
                    target,
                    b" HTTP/1.1\r\n",
                    *[b"%s: %s\r\n" % pair for pair in headers],
                    b"\r\n",
                ]
            )
            if content is None or isinstance(content, bytes):
                conn.write(head + content if content else head)
            else:
                await self._send_stream(conn, head, content, headers, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            while not exchange.head_done:
                if exchange.error is not None:
                    raise exchange.error
                await exchange.wait(read_timeout, httpcore.ReadTimeout)
        except BaseException:
            conn.exchange = None
            conn.close()
            self.release(conn, reusable=False)
            raise
        return H1Response(self, exchange, read_timeout)

    async def _send_stream(
        self,
        conn: _Connection,
        head: bytes,
        content: AsyncIterable[bytes],
        headers: Headers,
        timeout: float | None,
    ) -> None:
        chunked = _chunked(headers)
        conn.write(head)
        async for chunk in content:
            if not chunk:
                continue
            conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await conn.drain(timeout)
        if chunked:
            conn.write(b"0\r\n\r\n")

    # -- connections ----------------------------------------------------------------------------

    def take_idle(self) -> _Connection | None:
        """An open keep-alive connection, without waiting (None when none is idle): the
        server protocol's relay (bridge.proxy.relay) drives it by callbacks, then releases it."""
        if self._closed:
            return None
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or now - conn.idle_since > self.keepalive_expiry:
                conn.close()
                self._count_off(conn)
                continue
            return conn
        return None

    async def _acquire(
        self, pool_timeout: float | None, connect_timeout: float | None
    ) -> _Connection:
        if self._closed:
            raise httpcore.ConnectError("connection pool is closed")
        idle = self.take_idle()
        if idle is not None:
            return idle
        if self._count >= self.max_connections:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, pool_timeout)
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():  # handed over as we gave up
                    got = waiter.result()
                    if got is not None:
                        self.release(got, reusable=True)
                    else:
                        self._count -= 1
                        self._wake_one()
                if isinstance(exc, asyncio.TimeoutError):
                    raise httpcore.PoolTimeout("no free upstream connection in time") from None
                raise
            if handed is not None:
                return handed
        else:
            self._count += 1
        try:
            return await self._connect(connect_timeout)
        except BaseException:
            self._count -= 1
            self._wake_one()
            raise

    async def _connect(self, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context is not None else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout("timed out while connecting") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def release(self, conn: _Connection, *, reusable: bool) -> None:
        """Give a connection back after an exchange (closed unless ``reusable``)."""
        if not conn.counted:
            return
        if not reusable or conn.closed or self._closed:
            conn.close()
            self._count_off(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        """A connection the engine closed: off the idle list (and off the count) at once."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._count_off(conn)

    def _count_off(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._count -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        """A slot freed up: the first waiter opens its own connection."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._count_off(conn)


__all__ = ["Exchange", "H1Pool", "H1Response"]

Exchange = _Exchange  # the parser callbacks of one answer, for the relay to extend
