"""Proxy settings files: YAML and TOML, validation naming the field, precedence of --upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.proxy.settings import API_KEY_ENV, load_settings, settings_from_mapping

YAML = """
upstream:
  url: http://es.internal:9200/
  timeout_s: 12
limits: {max_body_bytes: 2048, max_window: 50}
batching: {max_wait_ms: 5, max_batch_pairs: 64}
rerank: {window_size: 30, model: tiny}
indices:
  "products*": {fields: [title, brand], model: homedepot}
"""

TOML = """
upstream = "https://search.example:9200"

[auth]
api_key = "s3cret"

[rerank]
window_size = 15
"""


def test_yaml_file_sets_nested_sections(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML)
    settings = load_settings(path)
    assert (
        settings.upstream.url,
        settings.upstream.timeout_s,
        settings.limits.max_body_bytes,
        settings.batching.max_batch_pairs,
    ) == ("http://es.internal:9200", 12.0, 2048, 64)


def test_toml_file_accepts_upstream_as_a_plain_url(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(TOML)
    settings = load_settings(path)
    assert (settings.upstream.url, settings.auth.api_key, settings.rerank["window_size"]) == (
        "https://search.example:9200",
        "s3cret",
        15,
    )


def test_upstream_argument_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML)
    assert load_settings(path, upstream="http://other:9200").upstream.url == "http://other:9200"


def test_unknown_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[batching.max_wait\]"):
        settings_from_mapping({"upstream": "http://x:9200", "batching": {"max_wait": 3}})


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\[limits.max_body_bytes\]"):
        settings_from_mapping({"upstream": "http://x:9200", "limits": {"max_body_bytes": "big"}})


def test_no_upstream_makes_a_model_server_only() -> None:
    assert settings_from_mapping({}).upstream is None


def test_an_upstream_section_without_url_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[upstream.url\]"):
        settings_from_mapping({"upstream": {"timeout_s": 3}})


def test_model_api_token_is_never_printed() -> None:
    settings = settings_from_mapping({"model_api": {"token": "s3cret"}})
    assert "s3cret" not in repr(settings)


def test_non_http_upstream_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[upstream.url\]"):
        settings_from_mapping({"upstream": "ftp://x"})


def test_missing_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[upstream.ca_file\]"):
        settings_from_mapping({"upstream": {"url": "https://x", "ca_file": str(tmp_path / "no")}})


def test_unparseable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("upstream = [")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings(path)


def test_api_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert settings_from_mapping({"upstream": "http://x:9200"}).auth.api_key == "from-env"


def test_api_key_is_not_in_the_repr() -> None:
    settings = settings_from_mapping({"upstream": "http://x:9200", "auth": {"api_key": "s3cret"}})
    assert "s3cret" not in repr(settings)


def test_index_pattern_overrides_server_defaults(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML)
    settings = load_settings(path)
    assert settings.rerank_defaults_for("products-2024") == {
        "window_size": 30,
        "model": "homedepot",
        "fields": ["title", "brand"],
    }


def test_index_pattern_must_match_every_named_index(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML)
    settings = load_settings(path)
    assert settings.rerank_defaults_for("products,logs")["model"] == "tiny"


def test_models_lists_every_configured_model(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML)
    assert load_settings(path).models() == ["homedepot", "tiny"]


def test_requests_may_name_configured_and_known_models_only() -> None:
    settings = settings_from_mapping(
        {"upstream": "http://x:9200", "rerank": {"model": "/srv/models/mine"}}
    )
    allowed = settings.allowed_models()
    assert (
        "/srv/models/mine" in allowed,
        "ms-marco-MiniLM-L-12-v2" in allowed,
        "/tmp/x" in allowed,
    ) == (
        True,
        True,
        False,
    )


def test_allowed_models_setting_replaces_the_default_list() -> None:
    settings = settings_from_mapping(
        {"upstream": "http://x:9200", "scorer": {"allowed_models": ["only-this"]}}
    )
    assert settings.allowed_models() == frozenset({"only-this"})


def test_bad_rerank_default_fails_at_load() -> None:
    with pytest.raises(ConfigError, match=r"\[rerank\] \[window_size\]"):
        settings_from_mapping({"upstream": "http://x:9200", "rerank": {"window_size": 0}})


def test_bad_per_index_value_names_the_pattern() -> None:
    with pytest.raises(ConfigError, match=r"\[indices.p\*\] \[fusion.method\]"):
        settings_from_mapping({"upstream": "http://x:9200", "indices": {"p*": {"fusion": "no"}}})


@pytest.mark.parametrize("nice", [-1, 20, 2.5, True])
def test_model_nice_is_an_integer_from_0_to_19(nice: object) -> None:
    with pytest.raises(ConfigError, match=r"\[batching.model_nice\]"):
        settings_from_mapping(
            {"upstream": {"url": "http://es:9200"}, "batching": {"model_nice": nice}}
        )


def test_model_nice_is_read() -> None:
    settings = settings_from_mapping(
        {"upstream": {"url": "http://es:9200"}, "batching": {"model_nice": 19}}
    )
    assert (settings.batching.model_nice, settings_from_mapping({}).batching.model_nice) == (19, 0)
