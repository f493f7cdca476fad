"""Access log and request metrics, as one outermost ASGI middleware.

One JSON line per request on the `bridge.proxy.access` logger: method, path, status, bytes, time and
rerank headers. Never headers, bodies or query strings (they can carry credentials or user text).

Under `rerank-bridge serve` the logger writes through ``AccessLineHandler`` (bridge.cli.serve):
the same lines, formatted without a ``LogRecord`` when the format is serve's own, and written in
batches (at most ``FLUSH_S`` late, one write per batch) instead of one write and flush per
request. Any other set-up (a handler of one's own, a filter, propagation, pytest's caplog) gets
every line through the logging machinery as before.

The relay (bridge.proxy.relay) hands its records to ``AccessLog.later``: counted and written in
a batch at most ``AccessLog.FLUSH_S`` later (a scrape of the metrics, or shutdown, first), so the
bookkeeping leaves the path of the request it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.proxy.error_responses import error_response
from bridge.proxy.prometheus import ProxyMetrics

access_logger = logging.getLogger("bridge.proxy.access")
logger = logging.getLogger(__name__)

# serve's format for the package's loggers (bridge.cli.serve.log_config)
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def route_label(scope: Scope, named: frozenset[str] = frozenset()) -> str:
    """Low-cardinality route name for metrics (never the raw path); ``named`` paths are their own
    label (the model routes)."""
    path: str = scope.get("path", "")
    if path.startswith("/_bridge/") or path in named:
        return path
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last in ("_search", "_msearch"):
        return last
    return "passthrough"


# one encoder for every line (json.dumps with separators builds a new one per call)
_LINE = json.JSONEncoder(separators=(",", ":"))
_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii


def access_line(
    method: str, path: str, status: int, sent: int, ms: float, client: Any, rerank: dict[str, str]
) -> str:
    """The access record as JSON: what ``_LINE.encode`` gives for the same dict, built directly
    when every value has its usual type (a third of the encoder's time)."""
    if (
        type(client) is str
        and type(method) is str
        and type(path) is str
        and type(status) is int
        and type(sent) is int
        and type(ms) is float
        and math.isfinite(ms)
    ):
        line = (
            f'{{"method":{_STRING(method)},"path":{_STRING(path)},"status":{status!r},'
            f'"bytes":{sent!r},"ms":{ms!r},"client":{_STRING(client)}'
        )
        for name, value in rerank.items():
            if name in _RECORD_KEYS or type(name) is not str or type(value) is not str:
                break
            line += f",{_STRING(name)}:{_STRING(value)}"
        else:
            return line + "}"
    record = {
        "method": method,
        "path": path,
        "status": status,
        "bytes": sent,
        "ms": ms,
        "client": client,
        **rerank,
    }
    return _LINE.encode(record)


_RECORD_KEYS = frozenset({"method", "path", "status", "bytes", "ms", "client"})
_Item = TypeVar("_Item")


class Batch(Generic[_Item]):
    """Items handled together: when ``size`` are in, or ``delay_s`` after the first (one timer
    per batch, calling ``on_time``), or at once outside an event loop. The owner handles what
    ``take`` gives it when ``add`` says the batch is due, and when ``on_time`` is called."""

    def __init__(self, size: int, delay_s: float, on_time: Callable[[], None]) -> None:
        self.size = size
        self.delay_s = delay_s
        self.on_time = on_time
        self.items: list[_Item] = []
        self._due: asyncio.TimerHandle | None = None

    def add(self, item: _Item) -> bool:
        """Add ``item``; True when the batch is due now (full, or no event loop to wait in)."""
        items = self.items
        items.append(item)
        if len(items) >= self.size:
            return True
        if self._due is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return True
            self._due = loop.call_later(self.delay_s, self.on_time)
        return False

    def take(self) -> list[_Item]:
        """The items in, the batch emptied and its timer stopped (a no-op when it is the timer
        calling)."""
        due, self._due = self._due, None
        if due is not None:
            due.cancel()
        items, self.items = self.items, []
        return items


class AccessLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing its lines in batches: one write (and flush) at most ``FLUSH_S``
    after the first line of a batch, or at ``BATCH`` lines, or on ``flush``/``close`` (the
    logging module flushes every handler at exit). Outside an event loop each line is written at
    once. ``line`` takes a message straight from ``AccessLog`` (no ``LogRecord``)."""

    FLUSH_S = 0.05
    BATCH = 256

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self._batch: Batch[str] = Batch(self.BATCH, self.FLUSH_S, self.flush)
        self._second = -1
        self._stamp = ""
        self._plain = False  # the formatter is LINE_FORMAT with logging's own time format
        self._level = logging.getLevelName(logging.INFO)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 (logging's name)
        super().setFormatter(fmt)
        self._level = logging.getLevelName(logging.INFO)
        self._plain = (
            type(fmt) is logging.Formatter
            and fmt._fmt == LINE_FORMAT
            and fmt.datefmt is None
            and isinstance(fmt._style, logging.PercentStyle)
            and fmt.converter is time.localtime
            and fmt.default_time_format == logging.Formatter.default_time_format
            and fmt.default_msec_format == logging.Formatter.default_msec_format
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def line(self, name: str, message: str) -> None:
        """An INFO line of logger ``name``, as ``emit`` would write it."""
        if not self._plain:
            record = logging.LogRecord(name, logging.INFO, __file__, 0, message, (), None)
            self.emit(record)
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # logging.Formatter.formatTime, once a second
            self._second = second
            self._stamp = time.strftime(logging.Formatter.default_time_format, time.localtime(now))
        msecs = int((now - second) * 1000)
        self._add(f"{self._stamp},{msecs:03d} {self._level} {name}: {message}{self.terminator}")

    def _add(self, text: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._batch.add(text):
                self._write()

    def _write(self) -> None:
        pending = self._batch.take()
        if pending:
            text = "".join(pending)
            try:
                self.stream.write(text)
            except (OSError, ValueError):  # a closed or broken stream: the batch is lost
                return
        super().flush()

    def flush(self) -> None:
        if self.lock is None:
            return
        with self.lock:
            self._write()


def _direct_handler() -> AccessLineHandler | None:
    """The access logger's handler when it is only an ``AccessLineHandler`` and nothing else
    could see a record (no filter, no propagation), else None."""
    log = access_logger
    handlers = log.handlers
    if len(handlers) != 1 or log.propagate or log.filters or log.disabled:
        return None
    handler = handlers[0]
    if type(handler) is not AccessLineHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


_Record = tuple[Scope, int, int, float, dict[str, str]]


class AccessLog:
    """The access line and the request metrics of one answered request; shared by the ASGI
    middleware below and the relay in the server protocol (bridge.proxy.relay), which hands its
    records over for a batch (``later``)."""

    FLUSH_S = 0.05  # a record handed over for a batch is counted and written at most this late
    BATCH = 256  # or when this many are waiting

    def __init__(self, metrics: ProxyMetrics, named_paths: frozenset[str] = frozenset()) -> None:
        self.metrics = metrics
        self.named_paths = named_paths
        self.tally = metrics.traffic
        self._batch: Batch[_Record] = Batch(self.BATCH, self.FLUSH_S, self.flush)
        metrics.held_back.append(self.flush)  # a scrape or a shutdown counts them first

    def later(
        self, scope: Scope, status: int, sent: int, elapsed: float, rerank: dict[str, str]
    ) -> None:
        """``done``, in a batch with the requests answered meanwhile (one timer per batch): the
        bookkeeping leaves the request's path, and what a batch touches stays in the caches
        from one record to the next. Outside an event loop: ``done`` at once."""
        if self._batch.add((scope, status, sent, elapsed, rerank)):
            self.flush()

    def flush(self) -> None:
        """Count and write the records waiting for their batch; their lines go out now."""
        waiting = self._batch.take()
        if not waiting:
            return
        done = self.done
        for record in waiting:
            done(*record)
        handler = _direct_handler()
        if handler is not None:
            handler.flush()

    def done(
        self, scope: Scope, status: int, sent: int, elapsed: float, rerank: dict[str, str]
    ) -> None:
        """Count the request and write its line (when the logger takes INFO)."""
        self.tally.add(route_label(scope, self.named_paths), scope["method"], status, elapsed)
        if not access_logger.isEnabledFor(logging.INFO):
            return
        message = access_line(
            scope["method"],
            scope["path"],
            status,
            sent,
            round(elapsed * 1000, 2),
            (scope.get("client") or ("", 0))[0],
            rerank,
        )
        handler = _direct_handler()
        if handler is not None:
            handler.line(access_logger.name, message)
            return
        # Logger.info without its caller lookup (a walk up the stack per request)
        access_logger.handle(
            access_logger.makeRecord(
                access_logger.name, logging.INFO, __file__, 0, message, (), None
            )
        )


class AccessMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: ProxyMetrics, named_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.log = AccessLog(metrics, named_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0
        rerank: dict[str, str] = {}

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name[:9].lower() == b"x-rerank-":
                        rerank[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status == 0:  # nothing sent yet: answer in the engine's error shape
                status = 500
                response = error_response(500, "rerank_bridge_exception", "internal proxy error")
                await response(scope, receive, send_wrapper)
        finally:
            self.log.done(scope, status, sent, time.perf_counter() - started, rerank)
