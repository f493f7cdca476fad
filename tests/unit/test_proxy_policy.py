"""Per-index rerank policy and A/B buckets (bridge.proxy.policy), without a server."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.proxy.policy import ABSplit, PolicyTable, decide, split_entry, stable_fraction
from bridge.proxy.settings import settings_from_mapping


def table(indices: dict[str, Any]) -> PolicyTable:
    return settings_from_mapping({"upstream": "http://es:9200", "indices": indices}).policies


TABLE = table(
    {
        "logs-*": {"rerank": "never"},
        "shop-*": {"rerank": "always", "fields": ["title"]},
        "docs-*": {"rerank": "on_request", "ab": {"share": 0.5, "key": "random"}},
        "*": {"rerank": "always"},
    }
)


@pytest.mark.parametrize(
    ("index", "mode", "pattern"),
    [
        ("shop-1", "always", "shop-*"),
        ("shop-1,shop-2", "always", "shop-*"),  # every name under one entry
        ("shop-*", "always", "shop-*"),  # a wildcard expression is matched as written
        ("sh*", "always", "*"),  # `sh*` is not matched by `shop-*`, only by `*`
        ("logs-1", "never", "logs-*"),
        ("shop-1,logs-1", "never", "logs-*"),  # any name under `never` wins
        ("shop-1,docs-1", "on_request", ""),  # names under different entries
        ("other", "always", "*"),
        (None, "always", "*"),  # no index = `*`
        ("_all", "always", "*"),
    ],
)
def test_resolution_rule(index: str | None, mode: str, pattern: str) -> None:
    resolution = TABLE.resolve(index)
    assert (resolution.mode, resolution.label) == (mode, pattern)


def test_no_matching_entry_is_on_request() -> None:
    only_shop = table({"shop-*": {"rerank": "always"}})
    assert only_shop.resolve("blog").mode == "on_request"
    assert only_shop.resolve("shop-1,blog").mode == "on_request"
    assert only_shop.resolve(None).mode == "on_request"


def test_policy_keys_leave_the_rerank_defaults() -> None:
    settings = settings_from_mapping(
        {
            "upstream": "http://es:9200",
            "indices": {"shop-*": {"rerank": "always", "ab": {"share": 0.2}, "fields": ["t"]}},
        }
    )
    assert dict(settings.indices["shop-*"]) == {"fields": ["t"]}
    assert settings.rerank_defaults_for("shop-1") == {"fields": ["t"]}


@pytest.mark.parametrize(
    ("mode", "bucket", "intent", "action"),
    [
        ("on_request", None, "silent", "untouched"),
        ("on_request", None, "asked", "rerank"),
        ("on_request", None, "declined", "strip"),
        ("always", None, "silent", "rerank"),
        ("always", None, "asked", "rerank"),
        ("always", None, "declined", "strip"),
        ("never", None, "silent", "untouched"),
        ("never", None, "asked", "strip"),
        ("never", None, "declined", "strip"),
        ("always", "treatment", "silent", "rerank"),
        ("always", "control", "silent", "untouched"),
        ("always", "control", "asked", "strip"),
        ("on_request", "treatment", "asked", "rerank"),
        ("on_request", "control", "asked", "strip"),
    ],
)
def test_decision_table(mode: Any, bucket: Any, intent: Any, action: str) -> None:
    assert decide(mode, bucket, intent) == action


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"rerank": "sometimes"}, "indices.p.rerank"),
        ({"rerank": "never", "ab": {"share": 0.1}}, "indices.p.ab"),
        ({"ab": {"share": 1.5}}, "indices.p.ab.share"),
        ({"ab": {"share": True}}, "indices.p.ab.share"),
        ({"ab": {"share": 0.1, "key": "query:x"}}, "indices.p.ab.key"),
        ({"ab": {"share": 0.1, "key": "header:"}}, "indices.p.ab.key"),
        ({"ab": {"share": 0.1, "bucket": "x"}}, "indices.p.ab"),
        ({"ab": "half"}, "indices.p.ab"),
    ],
)
def test_bad_policies_name_the_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        split_entry("p", entry)
    assert caught.value.field == field


def test_ten_thousand_ids_share_within_one_percent_and_stable() -> None:
    split = ABSplit(0.2, "header", "X-User-Id", salt="exp-1")
    ids = [f"user-{i}" for i in range(10_000)]
    first = [split.bucket(i) for i in ids]
    share = first.count("treatment") / len(ids)
    assert abs(share - 0.2) <= 0.01, share
    assert [split.bucket(i) for i in ids] == first
    # the same split parsed again (what a reload does) gives every id the same bucket
    reparsed = split_entry("p", {"ab": {"share": 0.2, "key": "header:X-User-Id", "salt": "exp-1"}})
    assert reparsed[0].ab is not None
    assert [reparsed[0].ab.bucket(i) for i in ids] == first


def test_salt_reshuffles_buckets() -> None:
    ids = [f"user-{i}" for i in range(2_000)]
    a = [ABSplit(0.5, salt="a").bucket(i) for i in ids]
    b = [ABSplit(0.5, salt="b").bucket(i) for i in ids]
    assert a != b
    assert stable_fraction("a", "user-1") == stable_fraction("a", "user-1")


def test_missing_key_falls_back_to_a_random_draw() -> None:
    split = ABSplit(0.3, "header", "X-User-Id")
    assert split.key_of({}) is None
    assert split.bucket(None, draw=lambda: 0.29) == "treatment"
    assert split.bucket(None, draw=lambda: 0.31) == "control"
    rng = random.Random(7)
    draws = [split.bucket(None, draw=rng.random) for _ in range(10_000)]
    assert abs(draws.count("treatment") / 10_000 - 0.3) <= 0.02


def test_keys_from_header_and_cookie() -> None:
    header = ABSplit(0.5, "header", "X-User-Id")
    cookie = ABSplit(0.5, "cookie", "uid")
    assert header.key_of({"x-user-id": "42"}) == "42"
    assert cookie.key_of({"cookie": "a=1; uid=u-42; b=2"}) == "u-42"
    assert cookie.key_of({"cookie": "a=1"}) is None
    assert cookie.key_of({"cookie": "\x00broken=;;"}) is None
    assert ABSplit(0.5).key_of({"x-user-id": "42"}) is None  # key: random


def test_share_zero_and_one() -> None:
    ids = [str(i) for i in range(1_000)]
    assert {ABSplit(0.0).bucket(i) for i in ids} == {"control"}
    assert {ABSplit(1.0).bucket(i) for i in ids} == {"treatment"}


def test_an_unknown_key_in_an_indices_entry_names_the_policy_keys_too() -> None:
    with pytest.raises(ConfigError, match="policy key: rerank"):
        settings_from_mapping(
            {"upstream": "http://es:9200", "indices": {"p": {"rerank": "always", "polcy": 1}}}
        )
