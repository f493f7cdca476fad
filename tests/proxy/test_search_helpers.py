"""Pure helpers of the rerank routes: the `rerank` URL flag and request body decoding."""

from __future__ import annotations

import gzip
import zlib

import pytest

from bridge.errors import ConfigError
from bridge.proxy.http_io import BodyTooLargeError, decode_body
from bridge.proxy.search_routes import accepts_gzip, parse_object, split_query


def test_rerank_flag_is_removed_and_other_params_kept() -> None:
    assert split_query(b"size=5&rerank=true&q=drill") == (b"size=5&q=drill", "true")


def test_bare_rerank_flag_means_true() -> None:
    assert split_query(b"rerank") == (b"", "")


def test_query_without_flag_is_left_byte_for_byte() -> None:
    assert split_query(b"q=a%20b&size=3") == (b"q=a%20b&size=3", None)


def test_bad_rerank_flag_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"^\[rerank\]"):
        split_query(b"rerank=sometimes")


def test_gzip_body_is_decoded() -> None:
    assert decode_body(gzip.compress(b'{"a":1}'), "gzip", 1000) == b'{"a":1}'


def test_deflate_body_is_decoded() -> None:
    assert decode_body(zlib.compress(b'{"a":1}'), "deflate", 1000) == b'{"a":1}'


def test_decompressed_size_is_bounded() -> None:
    with pytest.raises(BodyTooLargeError):
        decode_body(gzip.compress(b"0" * 10_000), "gzip", 1000)


def test_corrupt_gzip_is_a_400_naming_the_body() -> None:
    with pytest.raises(ConfigError, match=r"^\[body\]"):
        decode_body(b"not gzip", "gzip", 1000)


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ConfigError, match="br"):
        decode_body(b"x", "br", 1000)


def test_non_object_json_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^\[body\] expected a JSON object"):
        parse_object(b"[1, 2]", "body")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("*", True),
        ("identity", False),
        ("", False),
    ],
)
def test_accept_encoding_decides_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected
