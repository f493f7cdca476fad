"""Safe unzip and an inter-process file lock: one of each, for the model store and the engines.

``extract_zip`` refuses any entry that could land outside the target directory (absolute paths,
``..``, links, NUL bytes) before writing it; ``file_lock`` is an exclusive advisory lock that the
OS drops when its holder dies, so it never goes stale (flock on POSIX, msvcrt on Windows).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from bridge.errors import BridgeError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def unsafe_member_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting ``info`` could write outside the target directory, or None if it cannot."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "parent-directory reference"
    if "\x00" in name:
        return "NUL byte in name"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def extract_zip(
    bundle: zipfile.ZipFile,
    dest: Path,
    *,
    error: type[BridgeError],
    where: str,
    keep_modes: bool = False,
) -> None:
    """Extract every entry of ``bundle`` under ``dest``; an unsafe entry raises ``error``.

    ``keep_modes`` restores the Unix permission bits zipfile drops (executables of an engine
    distribution), readable by everyone.
    """
    base = dest.resolve()
    for info in bundle.infolist():
        reason = unsafe_member_reason(info)
        if reason in (None, "absolute path", "parent-directory reference"):
            target = (base / info.filename).resolve()
            if target != base and base not in target.parents:
                reason = "escapes the target directory"
        if reason is not None:
            raise error(f"{where}: refusing unsafe zip entry {info.filename!r} ({reason})")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with bundle.open(info) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)
        if keep_modes:
            os.chmod(target, (stat.S_IMODE(info.external_attr >> 16) or 0o644) | 0o444)


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    timeout_s: float | None = None,
    holder: str = "another process",
    error: type[BridgeError] = BridgeError,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Without ``timeout_s`` it waits as long as it takes; with it, ``error`` is raised when the lock
    is still held (by ``holder``, for the message) after that many seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout_s, holder, error)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _acquire(
    fd: int, path: Path, timeout_s: float | None, holder: str, error: type[BridgeError]
) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            _try_lock(fd)
            return
        except OSError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise error(
                    f"timed out after {timeout_s:.0f}s waiting for {holder} (lock {path})"
                ) from exc
            if not waiting:
                logger.info("waiting for %s (lock %s)", holder, path)
                waiting = True
            time.sleep(0.1)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


__all__ = ["extract_zip", "file_lock", "unsafe_member_reason"]
