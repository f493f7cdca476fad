"""Pick a JDK for an engine version: ES 8 runs on 17, ES 9 and OpenSearch 3 need 21 or newer."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bridge.errors import NodeError

_JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
_VERSION = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)


def java_major(home: Path) -> int | None:
    """The feature version a JDK declares in its `release` file, or None if it is not a JDK."""
    try:
        match = _VERSION.search((home / "release").read_text(errors="replace"))
    except OSError:
        return None
    if not match or not (home / "bin" / "java").is_file():
        return None
    return int(match.group(1))


def candidate_homes() -> list[Path]:
    homes: list[Path] = []
    for variable in ("RERANK_BRIDGE_JAVA_HOME", "JAVA_HOME"):
        value = os.environ.get(variable)
        if value:
            homes.append(Path(value))
    for directory in _JVM_DIRS:
        if directory.is_dir():
            homes.extend(sorted(p for p in directory.iterdir() if p.is_dir()))
    return homes


def find_java_home(min_major: int) -> Path:
    """`RERANK_BRIDGE_JAVA_HOME` wins if it is new enough; else the oldest JDK that is."""
    override = os.environ.get("RERANK_BRIDGE_JAVA_HOME")
    if override:
        major = java_major(Path(override))
        if major is not None and major >= min_major:
            return Path(override)
    found: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for home in candidate_homes():
        resolved = home.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        major = java_major(resolved)
        if major is not None and major >= min_major:
            found.append((major, resolved))
    if not found:
        raise NodeError(
            f"no JDK >= {min_major} found (looked at RERANK_BRIDGE_JAVA_HOME, JAVA_HOME and "
            f"{', '.join(map(str, _JVM_DIRS))}); install one or set RERANK_BRIDGE_JAVA_HOME"
        )
    return min(found)[1]
