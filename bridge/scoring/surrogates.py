"""Lone UTF-16 surrogates in text: legal as JSON escapes (`"\\ud800"`), stored and returned by
both engines, but not text `tokenizers` can take. They become U+FFFD, as a UTF-8 decoder makes of
them, only when an encode call refuses its input (the common case pays nothing)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def encode_well_formed(encode: Callable[..., T], inputs: list[Any], **options: Any) -> T:
    """``encode(inputs, **options)``; on a lone surrogate, once more with every input cleaned."""
    try:
        return encode(inputs, **options)
    except TypeError:  # tokenizers: "TextInputSequence must be str"
        return encode([_cleaned(item) for item in inputs], **options)


def _cleaned(item: Any) -> Any:
    if isinstance(item, tuple):
        return tuple(well_formed(text) for text in item)
    return well_formed(item) if isinstance(item, str) else item


__all__ = ["encode_well_formed", "well_formed"]
