"""Optional API key the proxy requires from its clients (separate from the engine's credentials).

The key travels in its own header (default `X-Bridge-Api-Key`) so `Authorization` stays the
engine's; the proxy header is removed before forwarding. `/_bridge/health` stays open for probes.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.proxy.error_responses import unauthorized

OPEN_PATHS = frozenset({"/_bridge/health"})


class ApiKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        header: str,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self._open = OPEN_PATHS | open_paths
        self._key = api_key.encode()
        self._header = header.lower().encode("latin-1")
        self._header_name = header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await unauthorized(self._header_name)(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == self._header:
                return hmac.compare_digest(value, self._key)
        return False
