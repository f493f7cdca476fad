"""The HTTPS fallback of the Maven fetch, against Maven Central itself (no mvn involved)."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest

from bridge.devtools.localnode.maven import artifact_url, fetch_artifact
from bridge.errors import NodeError

pytestmark = [pytest.mark.integration]

# The smallest artifact the project fetches (about 6 MB).
KNN_PLUGIN = "org.opensearch.plugin:opensearch-knn:3.5.0.0:zip"


def test_https_fetch_matches_the_published_checksum(tmp_path: Path) -> None:
    path = fetch_artifact(KNN_PLUGIN, tmp_path, use_mvn=False)
    with urllib.request.urlopen(artifact_url(KNN_PLUGIN) + ".sha1", timeout=60) as response:
        published = response.read().decode().split()[0]
    assert hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest() == published


def test_https_fetch_of_an_unpublished_version_names_the_url(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match=r"opensearch-knn-0\.0\.0\.0\.zip"):
        fetch_artifact("org.opensearch.plugin:opensearch-knn:0.0.0.0:zip", tmp_path, use_mvn=False)
