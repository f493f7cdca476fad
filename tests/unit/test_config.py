"""RerankConfig / FusionConfig: defaults, overrides and errors naming the field path."""

from __future__ import annotations

import pytest

from bridge.config import FusionConfig, RerankConfig
from bridge.errors import ConfigError


def test_true_gives_the_defaults() -> None:
    assert RerankConfig.from_value(True) == RerankConfig()


def test_default_window_size_is_20() -> None:
    assert RerankConfig().window_size == 20


def test_dict_overrides_only_named_fields() -> None:
    config = RerankConfig.from_value({"window_size": 50}, defaults={"model": "m", "explain": True})
    assert (config.window_size, config.model, config.explain) == (50, "m", True)


def test_config_instance_is_used_as_is() -> None:
    given = RerankConfig(window_size=7)
    assert RerankConfig.from_value(given, defaults={"window_size": 30}) is given


def test_fields_string_becomes_a_tuple() -> None:
    assert RerankConfig.from_value({"fields": "title"}).fields == ("title",)


def test_fields_replace_an_inherited_template() -> None:
    config = RerankConfig.from_value({"fields": ["title"]}, defaults={"template": "{name}"})
    assert (config.fields, config.template) == (("title",), None)


def test_unknown_fusion_method_names_the_path() -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value({"fusion": {"method": "borda"}})
    assert caught.value.field == "rerank.fusion.method"


def test_unknown_key_names_the_path() -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value({"windowsize": 3})
    assert caught.value.field == "rerank.windowsize"


def test_window_above_cap_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value({"window_size": 600, "max_window": 500})
    assert caught.value.field == "rerank.window_size"


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"window_size": 0}, "rerank.window_size"),
        ({"window_size": True}, "rerank.window_size"),
        ({"timeout_ms": -5}, "rerank.timeout_ms"),
        ({"on_failure": "ignore"}, "rerank.on_failure"),
        ({"min_score": float("nan")}, "rerank.min_score"),
        ({"explain": "yes"}, "rerank.explain"),
        ({"fields": []}, "rerank.fields"),
        ({"fusion": {"normalize": "l2"}}, "rerank.fusion.normalize"),
        ({"fusion": {"score_mode": "sum"}}, "rerank.fusion.score_mode"),
        ({"fusion": {"rank_constant": 0}}, "rerank.fusion.rank_constant"),
        ({"fusion": {"query_weight": "a"}}, "rerank.fusion.query_weight"),
        ({"model": ""}, "rerank.model"),
    ],
)
def test_invalid_value_names_its_field(section: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RerankConfig.from_value(section)
    assert caught.value.field == path


def test_fields_and_template_together_are_refused() -> None:
    with pytest.raises(ConfigError):
        RerankConfig.from_value({"fields": ["a"], "template": "{b}"})


def test_false_is_refused_by_from_value() -> None:
    with pytest.raises(ConfigError):
        RerankConfig.from_value(False)


def test_fusion_method_name_shorthand() -> None:
    assert RerankConfig.from_value({"fusion": "rrf"}).fusion.method == "rrf"


def test_linear_query_weight_defaults_to_0_2() -> None:
    assert FusionConfig(method="linear").query_weight == 0.2


def test_rescore_query_weight_defaults_to_1() -> None:
    assert FusionConfig.from_value({"method": "rescore"}).query_weight == 1.0


def test_to_dict_lists_fields() -> None:
    assert RerankConfig(fields=("a", "b")).to_dict()["fields"] == ["a", "b"]
