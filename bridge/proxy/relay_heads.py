"""The heads the relay reads itself, each read once: client request heads (``read_request``) and
engine answer heads (``answer_head``).

A client on a keep-alive connection sends the same head again and again (only the body and its
length change, within a few lengths), and an engine answers one kind of request with the same
head each time: each distinct head is read once and remembered in a bounded memo keyed by its
bytes (``remember``; heads over ``MEMO_HEAD_BYTES`` are read each time), so a head seen before
costs a dictionary lookup. bridge.proxy.relay keeps its own memos (the relay decision, the
engine-bound head, the client's answer head) the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from bridge.proxy.http_io import SEARCH_PATH
from bridge.proxy.upstream import Headers
from bridge.proxy.upstream_nodes import content_encoding

MAX_BODY = 64 * 1024  # uvicorn pauses reading a request body past this; larger go the ASGI way

# A complete request head the relay reads itself (bridge.proxy.server_protocol's fast path):
# HTTP/1.1 GET or POST, an origin-form target of visible ASCII, header fields of token names and
# values without control bytes, CRLF line ends. Anything else is left to uvicorn's parser.
_REQUEST_HEAD = re.compile(
    rb"(GET|POST) (/[!-~]*) HTTP/1\.1\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
# an answer head the relay frames itself: HTTP/1.1, a final status, plain header fields
_ANSWER_HEAD = re.compile(
    rb"HTTP/1\.1 ([2-5]\d\d) [\t\x20-\x7e\x80-\xff]*\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
_LENGTH_DIGITS = 18  # a Content-Length the relay reads itself (int64, as httptools allows)
_FIELD = re.compile(rb"([^:]+):[\t ]*([^\r]*?)[\t ]*\r\n")  # one field of a matched head
HEAD_KEY = "bridge.head"  # scope key: the bytes of a head ``read_request`` read (the memos' key)
SEARCH_KEY = "bridge.search"  # scope key: whether its path is a `_search` (read once per head)
_MEMO_ENTRIES = 256  # distinct heads remembered per memo (request heads, answer heads)
MEMO_HEAD_BYTES = 4096  # a longer head is read every time, not remembered


def read_request(data: bytes, client: Any) -> tuple[dict[str, Any], int] | None:
    """The request at the start of ``data`` when its head is whole and simple: its scope (the
    keys the relay and the access log read, header names in lower case as uvicorn gives them,
    ``content_length``, and the head's bytes under ``HEAD_KEY``) and where the request ends in
    ``data`` (maybe past its end: the body is not all in yet; the body is the ``content_length``
    bytes before). None for anything else (a partial head, another method or version, a chunked
    body, a repeated or odd `Content-Length`, a `Connection` other than keep-alive, an escaped
    path, a body over ``MAX_BODY``): uvicorn parses those.

    A client on a keep-alive connection sends the same head again and again (only the body and
    its length change, within a few lengths): each head is read once and remembered
    (``_HEADS``), so a request seen before costs a dictionary lookup. The scope's ``headers``
    list is shared between the requests of one head: read it, never change it."""
    end_of_head = data.find(b"\r\n\r\n")
    if end_of_head < 0:
        return None
    head = data[: end_of_head + 4]
    parsed = _read_once(_HEADS, head, _read_head)
    if parsed is None:
        return None
    method, path, raw_path, query, headers, length, search = parsed
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "client": client,
        "content_length": length,
        HEAD_KEY: head if len(head) <= MEMO_HEAD_BYTES else None,  # none: not remembered
        SEARCH_KEY: search,
    }
    return scope, len(head) + length


_ReadHead = tuple[str, str, bytes, bytes, Headers, int, bool]
_Read = TypeVar("_Read")
_HEADS: dict[bytes, _ReadHead | None] = {}
_UNSEEN: Any = object()


def _read_head(head: bytes) -> _ReadHead | None:
    """``read_request``'s reading of one whole head (it ends with the blank line)."""
    matched = _REQUEST_HEAD.match(head)
    if matched is None or matched.end() != len(head):
        return None
    method, target, block = matched.groups()
    raw_path, _, query = target.partition(b"?")
    if b"%" in raw_path or b"#" in target:
        return None
    headers = [(name.lower(), value) for name, value in _FIELD.findall(block)]
    length = -1
    for name, value in headers:
        if name == b"content-length":
            if length >= 0:
                return None
            length = _plain_length(value)
            if length < 0:
                return None
        elif name == b"connection":
            if value.lower() != b"keep-alive":
                return None
        elif name == b"transfer-encoding":
            return None
    if length > MAX_BODY:
        return None
    verb = "GET" if method == b"GET" else "POST"
    path = raw_path.decode("ascii")
    search = SEARCH_PATH.fullmatch(path) is not None
    return verb, path, raw_path, query, headers, max(length, 0), search


def is_search(scope: dict[str, Any]) -> bool:
    """Whether the request is a `_search` (read once per head by ``read_request``)."""
    search = scope.get(SEARCH_KEY)
    if search is None:
        return SEARCH_PATH.fullmatch(scope["path"]) is not None
    return bool(search)


def _read_once(memo: dict[bytes, _Read], head: bytes, read: Callable[[bytes], _Read]) -> _Read:
    """``read(head)``, remembered in ``memo`` (heads over ``MEMO_HEAD_BYTES`` are read each
    time)."""
    known: _Read = memo.get(head, _UNSEEN)
    if known is _UNSEEN:
        known = read(head)
        if len(head) <= MEMO_HEAD_BYTES:
            remember(memo, head, known)
    return known


def _plain_length(value: bytes) -> int:
    """A Content-Length value as a number, -1 unless plain digits an int64 holds (int() refuses
    over 4,300 digits: a long one is uvicorn's or httptools' to refuse, as any odd one)."""
    return int(value) if value.isdigit() and len(value) <= _LENGTH_DIGITS else -1


def remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Into a bounded memo: when it is full it starts again (the heads in use come back at once,
    a client sending ever-new heads costs one re-read each, as without it)."""
    if len(memo) >= _MEMO_ENTRIES:
        memo.clear()
    memo[key] = value


class AnswerHead:
    """An engine answer head the relay frames itself: by its Content-Length (``length``), or
    chunked (``length`` -1) with no Content-Length."""

    __slots__ = ("encoding", "headers", "keep_alive", "length", "raw", "status")

    def __init__(
        self, raw: bytes, status: int, headers: Headers, length: int, keep_alive: bool
    ) -> None:
        self.raw = raw
        self.status = status
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive
        self.encoding = content_encoding(headers)


_ANSWER_HEADS: dict[bytes, AnswerHead | None] = {}


def answer_head(head: bytes) -> AnswerHead | None:
    """The whole answer head ``head`` (it ends with the blank line), when the relay frames the
    answer itself; None: httptools reads it. Remembered per head (an engine answers a kind of
    request with the same head each time, or with a few lengths)."""
    return _read_once(_ANSWER_HEADS, head, _read_answer_head)


def _read_answer_head(head: bytes) -> AnswerHead | None:
    matched = _ANSWER_HEAD.match(head)
    if matched is None or matched.end() != len(head):
        return None
    status = int(matched.group(1))
    if status == 204 or status == 304:
        return None
    headers = _FIELD.findall(matched.group(2))
    length = -1
    chunked = False
    keep_alive = True
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            if length >= 0 or chunked:
                return None
            length = _plain_length(value)
            if length < 0:
                return None
        elif name == b"transfer-encoding":
            if chunked or length >= 0 or value.lower() != b"chunked":
                return None  # several codings, or a length beside: httptools decides
            chunked = True
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if length < 0 and not chunked:
        return None  # delimited by the connection's end
    return AnswerHead(head, status, headers, length, keep_alive)


__all__ = [
    "HEAD_KEY",
    "MAX_BODY",
    "MEMO_HEAD_BYTES",
    "SEARCH_KEY",
    "AnswerHead",
    "answer_head",
    "is_search",
    "read_request",
    "remember",
]
