"""Build one passage per hit from its ``_source`` (pure).

- ``fields``: values in the given order, dot paths (``brand.name``) through objects and arrays of
  objects, arrays joined with ``", "``, field values joined with a newline.
- ``template``: ``"{title} by {brand.name}"``; ``{{`` and ``}}`` are literal braces.
- neither: every text leaf of ``_source`` in document order (vectors, i.e. numeric arrays, skipped).

A missing or empty field yields an empty part, is counted per field name, and never raises.
Hits without ``_source`` fall back to ``fields`` (the engine's ``fields`` option, arrays).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.config import RerankConfig

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_MISSING = object()


@dataclass(frozen=True)
class Passages:
    """The passage text for each hit (same order) and, per field name, how many hits lacked it."""

    texts: list[str]
    missing: dict[str, int] = field(default_factory=dict)


def template_fields(template: str) -> tuple[str, ...]:
    """Field names a template refers to, in order of first appearance."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is not None and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return tuple(names)


def needed_fields(config: RerankConfig) -> tuple[str, ...] | None:
    """The ``_source`` fields passages read, or ``None`` for the whole ``_source``."""
    if config.fields is not None:
        return config.fields
    if config.template is not None:
        return template_fields(config.template)
    return None


def passage_texts(hits: Sequence[Mapping[str, Any]], config: RerankConfig) -> Passages:
    """One passage per hit, built as ``config.fields`` / ``config.template`` say."""
    missing: dict[str, int] = {}
    texts: list[str] = []
    for hit in hits:
        source = _hit_source(hit)
        if config.template is not None:
            texts.append(_render(config.template, source, missing))
        elif config.fields is not None:
            parts = [_field_text(source, name, missing) for name in config.fields]
            texts.append("\n".join(p for p in parts if p))
        else:
            texts.append("\n".join(_all_text(source)))
            if not texts[-1]:
                missing["_source"] = missing.get("_source", 0) + 1
    return Passages(texts=texts, missing=missing)


def _hit_source(hit: Mapping[str, Any]) -> Mapping[str, Any]:
    source = hit.get("_source")
    if isinstance(source, Mapping):
        return source
    fields_ = hit.get("fields")
    return fields_ if isinstance(fields_, Mapping) else {}


def _render(template: str, source: Mapping[str, Any], missing: dict[str, int]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return _field_text(source, match.group(1).strip(), missing)

    return _PLACEHOLDER.sub(substitute, template).strip()


def _field_text(source: Mapping[str, Any], name: str, missing: dict[str, int]) -> str:
    text = _to_text(lookup(source, name))
    if not text:
        missing[name] = missing.get(name, 0) + 1
    return text


def lookup(source: Mapping[str, Any], path: str) -> Any:
    """Value at a dot path; arrays of objects fan out into a list. ``None`` when absent."""
    if path in source:  # a flat key that itself contains dots ("brand.name": ...)
        return source[path]
    found = _lookup(source, path.split("."))
    return None if found is _MISSING else found


def _lookup(node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    if isinstance(node, list):
        values = [_lookup(item, parts) for item in node]
        flat: list[Any] = []
        for value in values:
            if value is _MISSING:
                continue
            flat.extend(value if isinstance(value, list) else [value])
        return flat if flat else _MISSING
    if not isinstance(node, Mapping):
        return _MISSING
    # Try the longest dotted key first so {"a.b": {"c": 1}} answers "a.b.c".
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found = _lookup(node[key], parts[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ", ".join(t for t in (_to_text(v) for v in value) if t)
    if isinstance(value, Mapping):
        return ", ".join(_all_text(value))
    return str(value)


def _all_text(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node.strip()] if node.strip() else []
    if isinstance(node, Mapping):
        out: list[str] = []
        for value in node.values():
            out.extend(_all_text(value))
        return out
    if isinstance(node, list):
        if node and all(isinstance(v, (int, float)) for v in node):
            return []  # a vector, not text
        out = []
        for value in node:
            out.extend(_all_text(value))
        return out
    return []


__all__ = ["Passages", "lookup", "needed_fields", "passage_texts", "template_fields"]
