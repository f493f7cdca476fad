"""Settings reload without a restart: on SIGHUP, or when the settings file changes.

The file is read and validated exactly as at start-up (bridge.proxy.settings); only a file that
passes replaces the running settings (``Proxy.apply_settings``: `rerank` and `indices`, with their
policies and A/B splits, apply to the next request; changes to other sections are logged as
needing a restart). A file that fails leaves the old settings in force and logs why. SIGHUP is
handled when the proxy runs in the main thread of its process (``serve`` with one worker; with
``--workers N`` uvicorn's supervisor restarts the workers on SIGHUP, so use the watched file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.proxy.settings import MODELS_ENV, load_settings

if TYPE_CHECKING:
    from bridge.proxy.state import Proxy

logger = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


class SettingsReloader:
    """Reloads ``proxy.config_path`` into ``proxy`` (nothing to do without a file)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.path = proxy.config_path
        self._seen: Signature = self._signature()

    def reload(self, why: str) -> bool:
        """Read, validate and apply the file; False (old settings kept, error logged) if bad."""
        if self.path is None:
            return False
        metrics = self.proxy.metrics
        self._seen = self._signature()
        try:
            new = load_settings(
                self.path,
                upstream=self.proxy.upstream_override,
                models=json.loads(os.environ.get(MODELS_ENV) or "[]"),  # serve --model stays
            )
        except ConfigError as exc:
            metrics.settings_reloads.labels("rejected").inc()
            logger.error(
                "settings reload (%s) rejected, the previous settings stay in force: %s: %s",
                why,
                self.path,
                exc,
            )
            return False
        later = self.proxy.apply_settings(new)
        metrics.settings_reloads.labels("applied").inc()
        logger.info("settings reloaded from %s (%s)", self.path, why)
        if later:
            logger.warning(
                "settings changed in %s: they apply after a restart, not on reload",
                ", ".join(later),
            )
        return True

    def _signature(self) -> Signature:
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def check(self) -> bool:
        """Reload if the file changed since the last look (True when it reloaded cleanly)."""
        signature = self._signature()
        if signature == self._seen or signature is None:
            return False
        self._seen = signature
        return self.reload("file changed")

    async def watch(self) -> None:
        while True:
            interval = self.proxy.settings.reload.watch_interval_s
            await asyncio.sleep(interval if interval > 0 else 1.0)
            if interval > 0:
                try:
                    self.check()
                except Exception:  # never let the watch die: the next change is retried
                    logger.exception("settings reload from %s failed", self.path)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SettingsReloader]:
        """Watch the file and handle SIGHUP while the app runs."""
        if self.path is None:
            yield self
            return
        loop = asyncio.get_running_loop()
        sighup = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP")
        if sighup:
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        task = asyncio.create_task(self.watch())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)


__all__ = ["SettingsReloader"]
