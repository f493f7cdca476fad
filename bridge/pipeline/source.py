"""``_source`` filtering: read what the caller asked for, widen it, restore it (pure).

The caller's filter may come as the body's ``_source`` (``true``/``false``, a pattern, a list of
patterns, ``{"includes": [...], "excludes": [...]}`` or the singular ``include``/``exclude``) and as
``_source_includes``/``_source_excludes`` URL parameters (lists or comma-separated strings), which
take precedence as they do in Elasticsearch.

Client-side filtering reproduces the engines' source filters (checked against live nodes):

- Elasticsearch without a wildcard in the excludes filters the bytes with a path filter: patterns
  match dot segment by segment, ``*`` stays within a segment (``*.name`` matches ``brand.name``,
  ``*e`` does not), ``**`` spans segments; an object emptied by filtering disappears;
- Elasticsearch with a wildcard in any exclude, and OpenSearch always, filter the map with
  automata: ``*`` matches across dots (``*e`` matches ``brand.name``); an included object keeps
  its shell when its content is excluded; array elements emptied by filtering disappear.

In both, a pattern that names an object selects everything inside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bridge.errors import ConfigError


@dataclass(frozen=True)
class SourceFilter:
    """What ``_source`` the caller wants: nothing, everything, or includes/excludes patterns."""

    enabled: bool = True
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @property
    def is_full(self) -> bool:
        return self.enabled and not self.includes and not self.excludes

    def to_request(self) -> Any:
        """The ``_source`` request value that expresses this filter."""
        if not self.enabled:
            return False
        if self.is_full:
            return True
        out: dict[str, list[str]] = {}
        if self.includes:
            out["includes"] = list(self.includes)
        if self.excludes:
            out["excludes"] = list(self.excludes)
        return out


def parse_source_filter(
    body_value: Any = None, includes_param: Any = None, excludes_param: Any = None
) -> SourceFilter:
    """Read the caller's filter from the body ``_source`` and the URL parameters."""
    enabled = True
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    if body_value is None or body_value is True:
        pass
    elif body_value is False:
        enabled = False
    elif isinstance(body_value, str):
        # A string is a boolean in URL params (?_source=false) or a comma-separated pattern list.
        if body_value.lower() in ("false", "true"):
            enabled = body_value.lower() == "true"
        else:
            includes = _patterns(body_value, "_source")
    elif isinstance(body_value, (list, tuple)):
        includes = _patterns(body_value, "_source")
    elif isinstance(body_value, Mapping):
        unknown = set(body_value) - {"includes", "excludes", "include", "exclude"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", field="_source")
        includes = _patterns(body_value.get("includes", body_value.get("include")), "_source")
        excludes = _patterns(body_value.get("excludes", body_value.get("exclude")), "_source")
    else:
        raise ConfigError(f"unsupported value {body_value!r}", field="_source")
    if includes_param is not None:
        includes = _patterns(includes_param, "_source_includes")
    if excludes_param is not None:
        excludes = _patterns(excludes_param, "_source_excludes")
    return SourceFilter(enabled=enabled, includes=includes, excludes=excludes)


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise ConfigError(f"expected a pattern or a list of patterns, got {value!r}", field=where)


def widen(
    requested: SourceFilter, needed: Sequence[str] | None, engine: str = "elasticsearch"
) -> SourceFilter:
    """The filter to send to the engine so every needed field comes back.

    ``needed=None`` means passages read the whole ``_source``. Caller excludes that could hide a
    needed field are dropped (restored afterwards); the others stay to keep responses small.
    """
    if requested.is_full:
        return requested
    if needed is None:
        return SourceFilter()
    if not requested.enabled:
        return SourceFilter(includes=tuple(needed))
    includes = tuple(dict.fromkeys([*requested.includes, *needed])) if requested.includes else ()
    excludes = tuple(
        e for e in requested.excludes if not any(_overlaps(name, e) for name in needed)
    )
    if (
        _map_mode(requested, engine)
        and not _map_mode(SourceFilter(excludes=excludes), engine)
        and any("*" in i for i in includes)
    ):
        # Dropping the wildcard excludes would switch the engine to segment-wise include
        # matching, which selects less than the caller's cross-dot wildcards: fetch everything.
        includes = ()
    return SourceFilter(includes=includes, excludes=excludes)


def _overlaps(name: str, pattern: str) -> bool:
    # The pattern hides the field or a parent of it, or may hide part of its content, under
    # either matching mode.
    return (
        _matches(name, pattern)
        or _could_match_below(name, pattern)
        or _glob_prefix(name, pattern)
        or _extendable(name + ".", pattern)
    )


def _matches(path: str, pattern: str) -> bool:
    """True when the pattern selects ``path`` itself or one of its parent objects."""
    return _prefix_match(tuple(path.split(".")), tuple(pattern.split(".")))


def _prefix_match(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return True  # the pattern selected an ancestor (or the path itself): all below it
    if pattern[0] == "**":
        return _prefix_match(path, pattern[1:]) or (bool(path) and _prefix_match(path[1:], pattern))
    return (
        bool(path)
        and _segment(pattern[0]).fullmatch(path[0]) is not None
        and _prefix_match(path[1:], pattern[1:])
    )


def _could_match_below(path: str, pattern: str) -> bool:
    """Conservatively: might the pattern select something strictly inside the object at path?"""
    parts, segments = path.split("."), pattern.split(".")
    if "**" in segments:
        return True
    return len(segments) > len(parts) and all(
        _segment(q).fullmatch(p) is not None for p, q in zip(parts, segments, strict=False)
    )


@lru_cache(maxsize=1024)
def _segment(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")), re.DOTALL)


def parse_filter_path(value: Any) -> tuple[str, ...]:
    """The ``filter_path`` parameter (comma-separated or a list) as a tuple of paths."""
    return _patterns(value, "filter_path")


def apply_filter_path(response: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Filter a whole response like the engines' ``filter_path`` (``-`` prefixes an exclusion).

    Both engines use the segment-wise path filter here, the same as Elasticsearch's byte-level
    ``_source`` filter.
    """
    spec = SourceFilter(
        includes=tuple(p for p in paths if not p.startswith("-")),
        excludes=tuple(p[1:] for p in paths if p.startswith("-")),
    )
    return _path_object(response, "", spec)


def apply_source_filter(
    source: Mapping[str, Any], spec: SourceFilter, engine: str = "elasticsearch"
) -> dict[str, Any]:
    """Filter a ``_source`` object client-side the way ``engine`` would have."""
    if _map_mode(spec, engine):
        return _map_object(source, "", spec)
    return _path_object(source, "", spec)


def _map_mode(spec: SourceFilter, engine: str) -> bool:
    return engine == "opensearch" or any("*" in e for e in spec.excludes)


_DROP = object()


# -- path-filter mode (no wildcard excludes) -----------------------------------------------


def _path_object(node: Mapping[str, Any], prefix: str, spec: SourceFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        kept = _path_value(value, f"{prefix}{key}", spec)
        if kept is not _DROP:
            out[key] = kept
    return out


def _path_value(value: Any, path: str, spec: SourceFilter) -> Any:
    if any(_matches(path, p) for p in spec.excludes):
        return _DROP
    included = not spec.includes or any(_matches(path, p) for p in spec.includes)
    if isinstance(value, Mapping):
        if not value:
            return {} if included else _DROP
        inner = _path_object(value, path + ".", spec)
        return inner if inner else _DROP
    if isinstance(value, list):
        if not value:
            return [] if included else _DROP
        items: list[Any] = []
        for item in value:
            if isinstance(item, (Mapping, list)):
                kept = _path_value(item, path, spec)
                if kept is not _DROP:
                    items.append(kept)
            elif included:
                items.append(item)
        return items if items else _DROP
    return value if included else _DROP


# -- map-filter mode (a wildcard exclude): ``*`` crosses dots ---------------------------------


def _map_object(node: Mapping[str, Any], prefix: str, spec: SourceFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        accepted = not spec.includes or any(_glob_prefix(path, p) for p in spec.includes)
        if not accepted and not any(_extendable(path, p) for p in spec.includes):
            continue
        if any(_glob_prefix(path, e) for e in spec.excludes):
            continue
        if accepted and not any(_extendable(path + ".", e) for e in spec.excludes):
            out[key] = value  # nothing below can be excluded: take it whole
        elif isinstance(value, Mapping):
            inner = _map_object(value, path + ".", spec)
            if accepted or inner:
                out[key] = inner
        elif isinstance(value, list):
            items = _map_list(value, path, spec, accepted)
            if accepted or items:
                out[key] = items
        elif accepted:
            out[key] = value
    return out


def _map_list(values: list[Any], path: str, spec: SourceFilter, accepted: bool) -> list[Any]:
    out: list[Any] = []
    for item in values:
        if isinstance(item, Mapping):
            inner = _map_object(item, path + ".", spec)
            if inner:
                out.append(inner)
        elif isinstance(item, list):
            nested = _map_list(item, path, spec, accepted)
            if nested:
                out.append(nested)
        elif accepted:
            out.append(item)
    return out


def _glob_prefix(path: str, pattern: str) -> bool:
    """The whole path, or a part of it ending before a dot, matches (``*`` crosses dots)."""
    regex = _glob(pattern)
    if regex.fullmatch(path):
        return True
    return any(regex.fullmatch(path[:i]) for i, ch in enumerate(path) if ch == ".")


def _extendable(text: str, pattern: str) -> bool:
    """Could some string starting with ``text`` match ``pattern`` (``*`` = any characters)?"""
    return _extends(text, pattern)


@lru_cache(maxsize=4096)
def _extends(text: str, pattern: str) -> bool:
    if not text:
        return True
    if not pattern:
        return False
    if pattern[0] == "*":
        return _extends(text, pattern[1:]) or _extends(text[1:], pattern)
    return pattern[0] == text[0] and _extends(text[1:], pattern[1:])


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")), re.DOTALL)


__all__ = [
    "SourceFilter",
    "apply_filter_path",
    "apply_source_filter",
    "parse_filter_path",
    "parse_source_filter",
    "widen",
]
