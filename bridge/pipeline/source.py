"""``_source`` filtering: read what the caller asked for, widen it, restore it (pure).

The caller's filter may come as the body's ``_source`` (``true``/``false``, a pattern, a list of
patterns, ``{"includes": [...], "excludes": [...]}`` or the singular ``include``/``exclude``) and as
``_source_includes``/``_source_excludes`` URL parameters (lists or comma-separated strings), which
take precedence as they do in Elasticsearch. Patterns use ``*`` wildcards over dot paths; a pattern
that names an object takes the whole object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
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


def widen(requested: SourceFilter, needed: Sequence[str] | None) -> SourceFilter:
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
    return SourceFilter(includes=includes, excludes=excludes)


def _overlaps(name: str, pattern: str) -> bool:
    # Conservative: the pattern hides the field, a parent of it, or possibly part of its content.
    if _matches(name, pattern) or pattern.startswith(name + "."):
        return True
    return "*" in pattern and fnmatchcase(name, pattern.split("*")[0] + "*")


def _matches(path: str, pattern: str) -> bool:
    """A dot path matches when it or one of its parent objects matches the pattern."""
    parts = path.split(".")
    return any(fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def apply_source_filter(source: Mapping[str, Any], spec: SourceFilter) -> dict[str, Any]:
    """Filter a ``_source`` object client-side the way the engine would have."""
    return _filter_object(source, "", spec)


def _filter_object(node: Mapping[str, Any], prefix: str, spec: SourceFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        kept = _filter_value(value, f"{prefix}{key}", spec)
        if kept is not _DROP:
            out[key] = kept
    return out


_DROP = object()


def _filter_value(value: Any, path: str, spec: SourceFilter) -> Any:
    if any(_matches(path, p) for p in spec.excludes):
        return _DROP
    included = not spec.includes or any(_matches(path, p) for p in spec.includes)
    if isinstance(value, Mapping):
        inner = _filter_object(value, path + ".", spec)
        return inner if inner or (included and not value) else _DROP
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            if isinstance(item, Mapping):
                filtered = _filter_object(item, path + ".", spec)
                if filtered or (included and not item):
                    items.append(filtered)
            elif included:
                items.append(item)
        return items if items or (included and not value) else _DROP
    return value if included else _DROP


__all__ = ["SourceFilter", "apply_source_filter", "parse_source_filter", "widen"]
