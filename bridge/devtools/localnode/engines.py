"""What differs between Elasticsearch and OpenSearch: artifacts, JDKs, env vars, node settings."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import NodeError

# Newest versions whose integ-test zips Maven Central actually serves (checked 2026-11): 9.5.5/9.5.6
# and 9.6.0 are not published there. OpenSearch 3.5.0 is pinned because 3.5.0.0 is the newest k-NN
# plugin on Maven Central and a plugin installs only into the exact OpenSearch it was built for.
DEFAULT_VERSIONS = {"elasticsearch": "9.5.4", "opensearch": "3.5.0"}

MAVEN_REPO = "https://repo1.maven.org/maven2"
TEMURIN_25 = "/usr/lib/jvm/temurin-25-jdk-amd64"


@dataclass(frozen=True)
class EngineSpec:
    name: str
    group_id: str
    artifact_id: str
    executable: str  # under bin/
    config_file: str  # under config/
    java_home_var: str
    java_opts_var: str
    path_conf_var: str
    tmpdir_var: str

    def coordinates(self, version: str) -> str:
        return f"{self.group_id}:{self.artifact_id}:{version}:zip"

    def major(self, version: str) -> int:
        try:
            return int(version.split(".", 1)[0])
        except ValueError:
            raise NodeError(f"cannot read a major version from {self.name} {version!r}") from None

    def min_java(self, version: str) -> int:
        major = self.major(version)
        if self.name == "elasticsearch":
            return 21 if major >= 9 else 17
        return 21 if major >= 3 else 11

    def base_settings(self, version: str) -> dict[str, object]:
        """Settings every local test node needs, on top of paths and ports."""
        settings: dict[str, object] = {
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": 0,
            "transport.port": 0,
            "node.portsfile": True,
            # Test machines often have full-ish disks; a watermark must not turn indices read-only.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if self.name == "elasticsearch" and self.major(version) >= 8:
            # The integ-test zip ships x-pack-security; with it on, plain HTTP calls are refused.
            settings["xpack.security.enabled"] = False
        return settings


ENGINES = {
    "elasticsearch": EngineSpec(
        name="elasticsearch",
        group_id="org.elasticsearch.distribution.integ-test-zip",
        artifact_id="elasticsearch",
        executable="elasticsearch",
        config_file="elasticsearch.yml",
        java_home_var="ES_JAVA_HOME",
        java_opts_var="ES_JAVA_OPTS",
        path_conf_var="ES_PATH_CONF",
        tmpdir_var="ES_TMPDIR",
    ),
    "opensearch": EngineSpec(
        name="opensearch",
        group_id="org.opensearch.distribution.integ-test-zip",
        artifact_id="opensearch",
        executable="opensearch",
        config_file="opensearch.yml",
        java_home_var="OPENSEARCH_JAVA_HOME",
        java_opts_var="OPENSEARCH_JAVA_OPTS",
        path_conf_var="OPENSEARCH_PATH_CONF",
        tmpdir_var="OPENSEARCH_TMPDIR",
    ),
}

KNN_PLUGIN = ("org.opensearch.plugin", "opensearch-knn")


def engine_spec(engine: str) -> EngineSpec:
    try:
        return ENGINES[engine]
    except KeyError:
        raise NodeError(
            f"unknown engine {engine!r}; expected one of {', '.join(sorted(ENGINES))}"
        ) from None


def knn_plugin_version(opensearch_version: str) -> str:
    """k-NN plugin versions add a fourth digit to the OpenSearch version they are built for."""
    return f"{opensearch_version}.0"
