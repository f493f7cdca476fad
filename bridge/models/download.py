"""Download a known model's zip into the cache: atomic, locked, verified, zip-slip safe.

Steps, all under a per-model lock file so concurrent processes end with one good copy:
stream to a temp file in the cache dir, check its length (and sha256 when pinned), open it as a zip
and test every member's CRC, refuse unsafe entries (absolute paths, ``..``, links), extract into a
temp dir, check the model's files are there, then rename the directory into place. Leftovers of an
interrupted earlier attempt are removed under the lock, so they never block a retry.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Protocol

from bridge.errors import DownloadError, ModelError, ModelNotFoundError, OfflineError
from bridge.files import extract_zip, file_lock
from bridge.models.advice import model_fix
from bridge.models.cache_dir import default_cache_dir, offline_reason
from bridge.models.local import missing_files
from bridge.models.registry import (
    KNOWN_MODELS,
    UNSUPPORTED_MODELS,
    KnownModel,
    known_model_names,
    model_url,
)

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


class _RetryableError(DownloadError):
    """A failure another attempt may not repeat (network drop, truncated or damaged transfer)."""


def download_model(
    name: str,
    *,
    cache_dir: Path | str | None = None,
    progress: bool = True,
    retries: int = 1,
    timeout: float = 60.0,
    lock_timeout: float = 1800.0,
) -> Path:
    """Make sure the known model ``name`` is complete in the cache and return its directory.

    Does nothing when it already is. ``retries`` extra attempts follow a failed transfer.
    Raises ModelNotFoundError (unknown name, before any network), OfflineError, DownloadError.
    """
    known = KNOWN_MODELS.get(name)
    if name in UNSUPPORTED_MODELS:
        raise ModelError(f"model {name} is not supported: {UNSUPPORTED_MODELS[name]}")
    if known is None:
        raise ModelNotFoundError(
            f"unknown model {name!r}; downloadable models: {', '.join(known_model_names())}"
        )
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / name
    missing = missing_files(target, known)
    if not missing:
        return target
    reason = offline_reason()
    if reason is not None:
        raise OfflineError(
            f"model {name} is not in the cache and offline mode ({reason}) forbids downloading "
            f"it; missing: {', '.join(missing)} (expected in {target}). "
            f"Fix: {model_fix(name, target)}"
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the model cache {cache}: {exc}") from exc
    lock = cache / f".{name}.lock"
    holder = f"another process downloading {name}"
    with file_lock(lock, timeout_s=lock_timeout, holder=holder, error=DownloadError):
        if not missing_files(target, known):
            logger.debug("%s was downloaded by another process meanwhile", name)
            return target
        _remove_leftovers(cache, name)
        url = model_url(name)
        attempts = max(0, retries) + 1
        for attempt in range(1, attempts + 1):
            try:
                _download_and_install(url, known, cache, target, progress, timeout)
                break
            except _RetryableError as exc:
                if attempt == attempts:
                    raise DownloadError(
                        f"{exc.reason} (after {attempts} attempt(s)); nothing was kept. "
                        f"Fix: {model_fix(name, target)}"
                    ) from exc
                logger.info("download of %s failed (%s); retrying", name, exc.reason)
                time.sleep(min(2.0, 0.25 * attempt))
    logger.info("model %s ready in %s", name, target)
    return target


def _download_and_install(
    url: str, known: KnownModel, cache: Path, target: Path, progress: bool, timeout: float
) -> None:
    archive = _fetch(url, known, cache, progress, timeout)
    try:
        with _open_zip(archive, url) as zf:
            _install(zf, known, cache, target, url)
    finally:
        archive.unlink(missing_ok=True)


def _fetch(url: str, known: KnownModel, cache: Path, progress: bool, timeout: float) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{known.name}.", suffix=".zip.part", dir=cache)
    tmp = Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            received, total, digest = _stream(url, known.name, out, progress, timeout)
        if total is not None and received != total:
            raise _RetryableError(
                f"download of {url} was interrupted: received {received} of {total} bytes"
            )
        if known.zip_size is not None and received != known.zip_size:
            raise _RetryableError(f"{url}: {received} bytes, expected {known.zip_size}")
        if known.sha256 is not None and digest != known.sha256:
            raise _RetryableError(f"{url}: sha256 {digest} does not match {known.sha256}")
        done = True
        return tmp
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def _stream(
    url: str, label: str, out: _Writer, progress: bool, timeout: float
) -> tuple[int, int | None, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "rerank-bridge"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        message = f"{url}: HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code == 429:
            raise _RetryableError(message) from exc
        raise DownloadError(message) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _RetryableError(f"cannot reach {url}: {reason}") from exc
    digest = hashlib.sha256()
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(label, total, progress)
        try:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise _RetryableError(
                        f"download of {url} was interrupted after {received} bytes: {exc!r}"
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
    return received, total, digest.hexdigest()


def _open_zip(archive: Path, url: str) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _RetryableError(f"{url} is not a valid zip archive: {exc}") from exc
    try:
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        zf.close()
        raise _RetryableError(f"{url} is a damaged zip archive: {exc}") from exc
    if bad is not None:
        zf.close()
        raise _RetryableError(f"{url} is a damaged zip archive: bad CRC in {bad}")
    return zf


def _model_root(extracted: Path, name: str) -> Path:
    """FlashRank zips hold a ``<name>/`` folder; accept a single other folder or a flat zip too."""
    if (extracted / name).is_dir():
        return extracted / name
    entries = [p for p in extracted.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


def _install(zf: zipfile.ZipFile, known: KnownModel, cache: Path, target: Path, url: str) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{known.name}.", suffix=".tmp", dir=cache))
    try:
        extract_zip(zf, staging, error=DownloadError, where=url)
        root = _model_root(staging, known.name)
        absent = [Path(p).name for p in missing_files(root, known)]
        if absent:
            raise _RetryableError(f"{url} does not contain {', '.join(absent)}")
        if target.exists():
            # An incomplete copy (a killed FlashRank extraction, a deleted file): move it aside.
            aside = Path(tempfile.mkdtemp(prefix=f".{known.name}.", suffix=".old", dir=cache))
            target.rename(aside / "model")
            shutil.rmtree(aside, ignore_errors=True)
        root.rename(target)
    except OSError as exc:
        raise DownloadError(f"cannot install {known.name} into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_leftovers(cache: Path, name: str) -> None:
    """Temp files of an earlier, killed attempt; safe because we hold the model's lock."""
    for leftover in cache.glob(f".{name}.*"):
        if leftover.name.endswith(".lock"):
            continue
        logger.debug("removing leftover %s", leftover)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Bar(Protocol):
    def update(self, n: int, /) -> object: ...

    def close(self) -> None: ...


class _NoBar:
    def update(self, n: int, /) -> None:
        pass

    def close(self) -> None:
        pass


class _LineBar:
    """Fallback progress display on stderr when tqdm is not installed."""

    def __init__(self, label: str, total: int | None) -> None:
        self._label = label
        self._total = total
        self._done = 0
        self._shown = 0.0
        self._tty = sys.stderr.isatty()

    def update(self, n: int, /) -> None:
        self._done += n
        now = time.monotonic()
        if self._tty and now - self._shown > 0.5:
            self._shown = now
            print(f"\r{self._describe()}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(f"\r{self._describe()}" if self._tty else self._describe(), file=sys.stderr)

    def _describe(self) -> str:
        done = f"{self._done / 1e6:.1f} MB"
        total = f" / {self._total / 1e6:.1f} MB" if self._total else ""
        return f"downloading {self._label}: {done}{total}"


def _progress_bar(label: str, total: int | None, enabled: bool) -> _Bar:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineBar(label, total)
    bar: _Bar = tqdm(
        desc=label, total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
    )
    return bar
