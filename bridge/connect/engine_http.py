"""The few JSON calls `connect` makes to an engine (stdlib only), or prints them with --dry-run."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import UpstreamError

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


@dataclass
class EngineHttp:
    """``call(method, path, body)`` against ``url``; in dry-run mode it prints instead of sending.

    Credentials in the URL (``http://user:pass@host:9200``) become a Basic header.
    """

    url: str
    dry_run: bool = False
    out: TextIO | None = None
    timeout_s: float = 60.0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._auth: str | None = None
        if parts.username:
            token = f"{parts.username}:{parts.password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(token).decode()
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            parts = parts._replace(netloc=netloc)
        self.base = urlunsplit(parts).rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """Send one request (in dry-run mode: print it and answer status 0)."""
        record = {"method": method, "path": path, **({"body": body} if body is not None else {})}
        if self.dry_run:
            self.sent.append(record)
            if self.out is not None:
                self.out.write(json.dumps(record, indent=2) + "\n")
            return Answer(0, None)
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, path, data, "application/json")

    def call_ndjson(self, path: str, lines: list[Any]) -> Answer:
        """POST one JSON value per line (``_bulk``); never in dry-run mode."""
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self._send("POST", path, data, "application/x-ndjson")

    def _send(self, method: str, path: str, data: bytes | None, content_type: str) -> Answer:
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        request.add_header("Content-Type", content_type)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with _NO_PROXY.open(request, timeout=self.timeout_s) as response:
                return Answer(response.status, _json(response.read()))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, _json(exc.read()))
        except (urllib.error.URLError, OSError) as exc:
            raise UpstreamError(f"{method} {self.base}{path}: {exc}") from None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """Like ``call`` but any non-2xx answer is an error naming the engine's reason."""
        answer = self.call(method, path, body)
        if self.dry_run:
            return None
        if not 200 <= answer.status < 300:
            raise UpstreamError(
                f"{method} {path} answered {answer.status}: {json.dumps(answer.body)[:600]}"
            )
        return answer.body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")
