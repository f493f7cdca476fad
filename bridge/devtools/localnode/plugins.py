"""OpenSearch plugin sets for local nodes: k-NN alone (the default), or ML Commons + neural-search.

OpenSearch's `rerank` search response processor lives in neural-search and calls a model through
ML Commons; ML Commons needs job-scheduler, neural-search needs k-NN (and ML Commons). Plugin zips
are published on Maven Central (`org.opensearch.plugin:<artifact>:<opensearch version>.0:zip`)
only for some versions: 3.6.0.0 has all four, 3.5.0.0 only k-NN. Each plugin set gets its own
unpacked distribution in the cache (`opensearch-3.6.0-ml-neural`; no `+`, which the plugin tool
URL-decodes), installed once, in dependency order, so a plain node never loads ML Commons and a
node with it never re-installs anything.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

from bridge.devtools.localnode.engines import KNN_PLUGIN, knn_plugin_version
from bridge.devtools.localnode.maven import fetch_artifact
from bridge.errors import NodeError
from bridge.files import file_lock

logger = logging.getLogger(__name__)

PLUGIN_GROUP = KNN_PLUGIN[0]
# name on the command line -> Maven artifact, in the order they must be installed
ARTIFACTS = {
    "job-scheduler": "opensearch-job-scheduler",
    "knn": "opensearch-knn",
    "ml": "opensearch-ml-plugin",
    "neural": "neural-search",
}
REQUIRES = {"ml": ("job-scheduler",), "neural": ("knn", "ml")}
# the /_cat/plugins component name of each plugin
COMPONENTS = {
    "job-scheduler": "opensearch-job-scheduler",
    "knn": "opensearch-knn",
    "ml": "opensearch-ml",
    "neural": "opensearch-neural-search",
}


def plugin_closure(names: Iterable[str]) -> tuple[str, ...]:
    """The requested plugins plus what they need, in install order."""
    wanted: set[str] = set()
    pending = [name.strip() for name in names if name.strip()]
    while pending:
        name = pending.pop()
        if name not in ARTIFACTS:
            raise NodeError(f"unknown OpenSearch plugin {name!r}; known: {', '.join(ARTIFACTS)}")
        if name not in wanted:
            wanted.add(name)
            pending.extend(REQUIRES.get(name, ()))
    return tuple(name for name in ARTIFACTS if name in wanted)


def flavour(plugins: tuple[str, ...]) -> str | None:
    """The cache suffix of a plugin set: None for the default (k-NN alone or nothing)."""
    if set(plugins) <= {"knn"}:
        return None
    return "-".join(name for name in plugins if name in ("ml", "neural")) or "-".join(plugins)


def node_settings(plugins: tuple[str, ...]) -> dict[str, object]:
    """Node settings a plugin set needs on a single local node."""
    if "ml" not in plugins:
        return {}
    return {
        # remote models may call the bridge on this machine (any port)
        "plugins.ml_commons.trusted_connector_endpoints_regex": [
            r"^http://127\.0\.0\.1:[0-9]+/.*$",
            r"^http://localhost:[0-9]+/.*$",
        ],
        # read when a model is deployed: a loopback connector URL is refused without it
        "plugins.ml_commons.connector.private_ip_enabled": True,
        "plugins.ml_commons.only_run_on_ml_node": False,
        # a small test heap on a shared machine must not trip ML Commons' memory breakers
        "plugins.ml_commons.native_memory_threshold": 100,
        "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    }


def ensure_plugins(home: Path, version: str, java_home: Path, plugins: tuple[str, ...]) -> None:
    """Install ``plugins`` (already in order) into a cached distribution, each once."""
    for name in plugins:
        coordinates = f"{PLUGIN_GROUP}:{ARTIFACTS[name]}:{knn_plugin_version(version)}:zip"
        install_plugin(home, coordinates, java_home)


def ensure_knn_plugin(home: Path, version: str, java_home: Path) -> None:
    """Install the OpenSearch k-NN plugin into a cached OpenSearch distribution (once)."""
    if (home / "plugins" / KNN_PLUGIN[1]).is_dir():  # caches from before the install markers
        return
    ensure_plugins(home, version, java_home, ("knn",))


def install_plugin(home: Path, coordinates: str, java_home: Path) -> None:
    """`opensearch-plugin install --batch` one Maven artifact into ``home`` unless it is there."""
    artifact = coordinates.split(":")[1]
    # markers outside plugins/: OpenSearch takes every entry there for a plugin
    marker = home / ".rerank-bridge-plugins" / artifact
    if marker.is_file():
        return
    with file_lock(home.parent / f".{home.name}.plugins.lock"):
        if marker.is_file():
            return
        archive = fetch_artifact(coordinates, home.parent / "downloads")
        before = set(os.listdir(home / "plugins"))
        env = dict(os.environ)
        env["OPENSEARCH_JAVA_HOME"] = str(java_home)
        env["JAVA_HOME"] = str(java_home)
        env["OPENSEARCH_PATH_CONF"] = str(home / "config")
        command = [
            str(home / "bin" / "opensearch-plugin"),
            "install",
            "--batch",
            archive.resolve().as_uri(),
        ]
        done = subprocess.run(
            command, cwd=home, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        added = set(os.listdir(home / "plugins")) - before
        if done.returncode != 0:
            for name in added:
                shutil.rmtree(home / "plugins" / name, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise NodeError(f"installing {coordinates} failed ({done.returncode}):\n{tail}")
        for name in added:
            _readable(home / "plugins" / name)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(coordinates + "\n")
        logger.info("installed %s into %s", coordinates, home)


def _readable(root: Path) -> None:
    """Plugin files readable (and directories enterable) by the unprivileged node user."""
    for directory, _subdirs, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory) / name
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o444)
