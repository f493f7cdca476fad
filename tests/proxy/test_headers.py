"""What headers go upstream and come back: end-to-end only, the proxy's own key never forwarded."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

from certifi import where
from starlette.requests import Request

from bridge.proxy.settings import settings_from_mapping
from bridge.proxy.state import Proxy
from bridge.proxy.upstream import Upstream, end_to_end, ssl_context


def request_with(headers: list[tuple[bytes, bytes]]) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope)


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_hop_by_hop_headers_are_removed() -> None:
    headers = [
        (b"connection", b"keep-alive, x-private"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"x-private", b"1"),
        (b"x-elastic-product", b"Elasticsearch"),
        (b"content-encoding", b"gzip"),
    ]
    assert names(end_to_end(headers)) == [b"x-elastic-product", b"content-encoding"]


def test_repeated_headers_are_all_kept() -> None:
    headers = [(b"warning", b"299 a"), (b"warning", b"299 b")]
    assert end_to_end(headers) == headers


def test_proxy_key_and_host_are_not_forwarded() -> None:
    proxy = Proxy(settings_from_mapping({"upstream": "http://es:9200", "auth": {"api_key": "k"}}))
    request = request_with(
        [
            (b"host", b"proxy:8080"),
            (b"x-bridge-api-key", b"k"),
            (b"authorization", b"Basic dTpw"),
            (b"accept-encoding", b"gzip"),
        ]
    )
    assert names(proxy.forward_headers(request)) == [b"authorization", b"accept-encoding"]


def test_upstream_request_adds_only_host_and_body_framing() -> None:
    upstream = Upstream(settings_from_mapping({"upstream": "http://es:9200"}).upstream)
    sent = upstream.request_headers([(b"accept", b"application/json")], b"{}")
    assert sent == [
        (b"host", b"es:9200"),
        (b"accept", b"application/json"),
        (b"content-length", b"2"),
    ]


def test_streamed_body_without_length_is_sent_chunked() -> None:
    upstream = Upstream(settings_from_mapping({"upstream": "http://es:9200"}).upstream)

    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    assert (b"transfer-encoding", b"chunked") in upstream.request_headers([], body())


def test_path_cannot_change_the_upstream_host() -> None:
    upstream = Upstream(settings_from_mapping({"upstream": "http://es:9200/prefix"}).upstream)
    url = upstream.url(b"//evil.example/_search", b"q=x")
    assert (url.host, url.target) == (b"es", b"/prefix//evil.example/_search?q=x")


def test_tls_verification_is_on_by_default() -> None:
    settings = settings_from_mapping({"upstream": "https://es:9200"})
    context = ssl_context(settings.upstream)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_tls_ca_file_is_loaded() -> None:
    settings = settings_from_mapping({"upstream": {"url": "https://es:9200", "ca_file": where()}})
    assert ssl_context(settings.upstream).cert_store_stats()["x509_ca"] > 0


def test_tls_verification_can_be_turned_off() -> None:
    settings = settings_from_mapping({"upstream": {"url": "https://es:9200", "verify": False}})
    assert ssl_context(settings.upstream).verify_mode == ssl.CERT_NONE
