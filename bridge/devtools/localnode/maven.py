"""Fetch one artifact from Maven Central: `mvn dependency:copy` when mvn exists, else plain HTTPS.

mvn reuses ~/.m2 and any mirror or proxy the machine's Maven is configured with, so it comes first;
the HTTPS path verifies Maven Central's published SHA-1 before the file is moved into place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bridge.devtools.localnode.engines import MAVEN_REPO
from bridge.errors import NodeError

logger = logging.getLogger(__name__)

# Pinned so a fetch never depends on whichever plugin version the local Maven resolves by default.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MVN_TIMEOUT_S = 900
_HTTP_TIMEOUT_S = 60


def artifact_filename(coordinates: str) -> str:
    group, artifact, version, packaging = _split(coordinates)
    del group
    return f"{artifact}-{version}.{packaging}"


def artifact_url(coordinates: str, repo: str = MAVEN_REPO) -> str:
    group, artifact, version, packaging = _split(coordinates)
    path = "/".join([*group.split("."), artifact, version, f"{artifact}-{version}.{packaging}"])
    return f"{repo.rstrip('/')}/{path}"


def fetch_artifact(coordinates: str, dest_dir: Path, *, use_mvn: bool | None = None) -> Path:
    """Return the path of `coordinates` (group:artifact:version:packaging) inside `dest_dir`."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / artifact_filename(coordinates)
    if target.is_file() and target.stat().st_size > 0:
        return target
    mvn = shutil.which("mvn") if use_mvn is not False else None
    if mvn:
        try:
            _fetch_with_mvn(mvn, coordinates, dest_dir)
        except NodeError as exc:
            logger.warning("mvn could not fetch %s, trying HTTPS: %s", coordinates, exc)
        else:
            if target.is_file():
                return target
    _fetch_with_https(coordinates, target)
    return target


def _split(coordinates: str) -> tuple[str, str, str, str]:
    parts = coordinates.split(":")
    if len(parts) != 4 or not all(parts):
        raise NodeError(f"expected group:artifact:version:packaging, got {coordinates!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _fetch_with_mvn(mvn: str, coordinates: str, dest_dir: Path) -> None:
    command = [
        mvn,
        "-q",
        "-B",
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={coordinates}",
        f"-DoutputDirectory={dest_dir}",
    ]
    logger.info("fetching %s with mvn", coordinates)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_MVN_TIMEOUT_S,
            cwd=dest_dir,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NodeError(f"mvn timed out after {_MVN_TIMEOUT_S}s fetching {coordinates}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise NodeError(f"mvn failed ({done.returncode}) fetching {coordinates}:\n{tail}")


def _fetch_with_https(coordinates: str, target: Path) -> None:
    repo = os.environ.get("RERANK_BRIDGE_MAVEN_REPO", MAVEN_REPO)
    url = artifact_url(coordinates, repo)
    logger.info("downloading %s", url)
    algorithm, expected = _published_checksum(url)
    digest = hashlib.new(algorithm or "sha256")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if expected is None:
            # Some artifacts (e.g. opensearch 3.5.0's integ zip) have no checksum files at all;
            # the zip's own CRCs are still checked when it is unpacked.
            logger.warning("no checksum published for %s", url)
        elif digest.hexdigest() != expected:
            raise NodeError(
                f"{algorithm} mismatch for {url}: got {digest.hexdigest()}, want {expected}"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _published_checksum(url: str) -> tuple[str | None, str | None]:
    """The strongest checksum Maven Central publishes beside `url`, or (None, None)."""
    for algorithm in ("sha512", "sha256", "sha1"):
        try:
            text = _read_text(f"{url}.{algorithm}")
        except NodeError:
            continue
        words = text.split()
        if words:
            return algorithm, words[0].strip().lower()
    return None, None


def _open(url: str) -> http.client.HTTPResponse:
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S)
        return response
    except urllib.error.HTTPError as exc:
        raise NodeError(f"{url}: HTTP {exc.code} (not published on Maven Central?)") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NodeError(f"{url}: {exc}") from None


def _read_text(url: str) -> str:
    with _open(url) as response:
        body: bytes = response.read()
    return body.decode("ascii", errors="replace")
