"""Unpacked engine distributions in a cache shared by every run (and every process) on the machine.

One directory per engine and version, unpacked atomically under a file lock, so two test sessions
starting at once download and unpack once. Nodes never write into it: each node gets its own
config/data/logs directory (see process.py), so a cached distribution stays read-only after setup.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path

from bridge.devtools.localnode.engines import engine_spec
from bridge.devtools.localnode.maven import fetch_artifact
from bridge.errors import NodeError
from bridge.files import extract_zip, file_lock

logger = logging.getLogger(__name__)

_COMPLETE_MARKER = ".rerank-bridge-complete"


def engines_cache_dir() -> Path:
    """Where distributions live: `RERANK_BRIDGE_ENGINES_DIR`, else a per-user cache directory.

    As root the nodes run as an unprivileged user that cannot enter /root, so root's default is
    /var/cache/rerank-bridge/engines instead of ~/.cache.
    """
    override = os.environ.get("RERANK_BRIDGE_ENGINES_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/cache/rerank-bridge/engines")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rerank-bridge" / "engines"


def ensure_distribution(
    engine: str, version: str, cache_dir: Path | None = None, *, flavour: str | None = None
) -> Path:
    """Return the home directory of an unpacked distribution, fetching and unpacking it once.

    ``flavour`` (e.g. ``ml-neural``): a separate copy for a plugin set, so plugins installed for
    one kind of node never load in another.
    """
    spec = engine_spec(engine)
    root = cache_dir or engines_cache_dir()
    name = f"{engine}-{version}" + (f"-{flavour}" if flavour else "")
    home = root / name
    if (home / _COMPLETE_MARKER).is_file():
        return home
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    with file_lock(root / f".{name}.lock"):
        if (home / _COMPLETE_MARKER).is_file():
            return home
        archive = fetch_artifact(spec.coordinates(version), root / "downloads")
        staging = root / f".{name}.unpack-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            safe_extract(archive, staging)
            entries = list(staging.iterdir())
            top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
            if not (top / "bin" / spec.executable).is_file():
                raise NodeError(f"{archive} does not look like a {engine} distribution")
            shutil.rmtree(home, ignore_errors=True)
            os.rename(top, home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (home / _COMPLETE_MARKER).write_text(spec.coordinates(version) + "\n")
        logger.info("unpacked %s %s into %s", engine, version, home)
    return home


def safe_extract(archive: Path, dest: Path) -> None:
    """Unzip keeping Unix modes (zipfile drops them) and refusing paths that leave `dest`."""
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            extract_zip(bundle, root, error=NodeError, where=str(archive), keep_modes=True)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)  # a truncated download must not block the next try
        raise NodeError(f"{archive} is not a valid zip ({exc}); removed it, retry") from None
    for directory, _subdirs, _files in os.walk(root):
        os.chmod(directory, 0o755)
