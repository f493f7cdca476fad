"""A tqdm progress bar; without tqdm, a stderr line every 5 %; a silent stand-in when disabled."""

from __future__ import annotations

import sys
from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _LineBar(_NoBar):
    """``desc: done/total unit`` on stderr each time another 5 % is done (tqdm not installed)."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self._shown = 0, -1

    def update(self, n: int = 1) -> None:
        self.n += n
        step = self.n * 20 // max(self.total, 1)
        if step != self._shown:
            self._shown = step
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}", file=sys.stderr, flush=True)

    def set_description(self, text: str) -> None:
        self.desc = text


def progress_bar(total: int, *, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineBar(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
