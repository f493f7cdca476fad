"""A tqdm progress bar, or a silent stand-in when disabled or tqdm is missing."""

from __future__ import annotations

from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, *, desc: str = "", unit: str = "it", enabled: bool = True) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
