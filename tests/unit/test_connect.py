"""`connect` without an engine: the bodies it would send (--dry-run); the nodes' plugin sets."""

from __future__ import annotations

import json

import pytest

from bridge.cli import main
from bridge.connect import ElasticsearchPlan, OpenSearchPlan
from bridge.devtools.localnode.plugins import flavour, node_settings, plugin_closure
from bridge.errors import ConfigError, NodeError


def dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["connect", *args, "--dry-run"]) == 0
    decoder = json.JSONDecoder()
    text, requests, position = capsys.readouterr().out, [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(text, position)
        requests.append(value)
    return requests


def test_opensearch_dry_run_prints_connector_model_deploy_and_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = dry_run(
        capsys,
        "opensearch",
        "--engine",
        "http://os:9200",
        "--bridge",
        "http://bridge:8080",
        "--fields",
        "title,description",
    )
    assert [(r["method"], r["path"]) for r in sent] == [
        ("POST", "/_plugins/_ml/connectors/_create"),
        ("POST", "/_plugins/_ml/models/_register"),
        ("POST", "/_plugins/_ml/models/<model_id>/_deploy"),
        ("PUT", "/_search/pipeline/rerank-bridge"),
    ]
    processor = sent[3]["body"]["response_processors"][0]["rerank"]  # type: ignore[index]
    assert processor["context"]["document_fields"] == ["title", "description"]


def test_the_connector_posts_cohere_rerank_to_the_bridge() -> None:
    action = OpenSearchPlan("http://bridge:8080/", "m").connector()["actions"][0]
    assert action["url"] == "http://bridge:8080/v1/rerank"
    assert action["pre_process_function"] == "connector.pre_process.cohere.rerank"
    assert action["post_process_function"] == "connector.post_process.cohere.rerank"


def test_another_bridge_url_gets_another_connector_name() -> None:
    first = OpenSearchPlan("http://a:1", "m").connector()["name"]
    assert first != OpenSearchPlan("http://b:1", "m").connector()["name"]


def test_the_connector_always_carries_a_credential() -> None:
    assert OpenSearchPlan("http://a:1", "m").connector()["credential"]["api_key"]


def test_a_bridge_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="--bridge"):
        OpenSearchPlan("bridge:8080", "m")


def test_elasticsearch_dry_run_prints_the_custom_endpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = dry_run(
        capsys, "elasticsearch", "--engine", "http://es:9200", "--bridge", "http://b:8080"
    )
    assert [(r["method"], r["path"]) for r in sent] == [("PUT", "/_inference/rerank/rerank-bridge")]
    assert sent[0]["body"]["service"] == "custom"  # type: ignore[index]


def test_the_custom_template_leaves_input_and_query_unquoted() -> None:
    template = ElasticsearchPlan("http://b:1", "m").endpoint()["service_settings"]["request"]
    assert '"documents": ${input}' in template
    assert '"query": ${query}' in template


def test_ml_and_neural_bring_their_dependencies_in_install_order() -> None:
    assert plugin_closure(["neural"]) == ("job-scheduler", "knn", "ml", "neural")


def test_an_unknown_plugin_is_refused() -> None:
    with pytest.raises(NodeError, match="unknown OpenSearch plugin"):
        plugin_closure(["security"])


def test_the_ml_plugin_set_lives_in_its_own_distribution_copy() -> None:
    assert (flavour(plugin_closure(["knn"])), flavour(plugin_closure(["ml", "neural"]))) == (
        None,
        "ml-neural",
    )


def test_ml_nodes_trust_loopback_connectors_and_allow_private_ips() -> None:
    settings = node_settings(plugin_closure(["ml"]))
    assert settings["plugins.ml_commons.connector.private_ip_enabled"] is True
    assert (
        r"^http://127\.0\.0\.1:[0-9]+/.*$"
        in settings[  # type: ignore[operator]
            "plugins.ml_commons.trusted_connector_endpoints_regex"
        ]
    )
