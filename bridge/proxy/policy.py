"""When the proxy reranks a search it was not asked to: per-index policy and A/B buckets (pure).

An ``indices`` entry of the proxy settings may carry, next to its ``rerank`` defaults:

- ``rerank: always | on_request | never`` (default ``on_request``, the proxy's behaviour without a
  policy). ``always``: every eligible search is reranked with the entry's settings; a request's
  own ``rerank`` section (or ``?rerank=``) still wins, ``false`` included. ``never``: a client's
  ``rerank`` section or ``?rerank=true`` is ignored (removed before the engine sees the search).
- ``ab: {share: 0.2, key: header:X-User-Id | cookie:NAME | random, salt: "..."}``: a request is in
  the ``treatment`` bucket with probability ``share``; treatment follows the policy, ``control``
  is treated as ``never``. The bucket is a stable hash of ``salt`` and the key's value, so a key
  keeps its bucket across requests, processes and reloads; a request without the key (or
  ``key: random``) is drawn at random.

Which entry a search uses (the documented rule): the index expression of the search (path, or
an ``_msearch`` header; none or ``_all`` counts as ``*``) is split on commas, and each name is
matched, as written, against the patterns in file order (``fnmatch``: ``products-1`` matches
``products*``; the wildcard expression ``prod*`` matches the pattern ``prod*`` or ``*``, not
``products*``). Each name takes its first matching entry. If any name falls under ``never``, the
search is ``never``; else if every name falls under the same entry, that entry applies (policy,
``ab`` and settings); otherwise (names under different entries, or some under none) the search
is ``on_request``, today's behaviour.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

from bridge.errors import ConfigError

Mode = Literal["always", "on_request", "never"]
Bucket = Literal["treatment", "control"]
MODES: tuple[Mode, ...] = ("always", "on_request", "never")
POLICY_KEYS = ("rerank", "ab")
_AB_KEYS = ("share", "key", "salt")


@dataclass(frozen=True)
class ABSplit:
    """``share`` of keys in treatment; ``source`` header/cookie/random and its ``name``."""

    share: float
    source: Literal["header", "cookie", "random"] = "random"
    name: str = ""
    salt: str = ""

    def key_of(self, headers: Mapping[str, str]) -> str | None:
        """The request's key (``headers`` with lower-case names), None when it has none."""
        if self.source == "header":
            value = headers.get(self.name.lower())
            return value if value else None
        if self.source == "cookie":
            return cookie_value(headers.get("cookie", ""), self.name)
        return None

    def bucket(self, key: str | None, draw: Callable[[], float] = random.random) -> Bucket:
        """``treatment`` when the key's stable fraction (or a random draw) is below ``share``."""
        fraction = draw() if key is None else stable_fraction(self.salt, key)
        return "treatment" if fraction < self.share else "control"


@dataclass(frozen=True)
class IndexPolicy:
    """One ``indices`` entry's policy."""

    pattern: str
    mode: Mode = "on_request"
    ab: ABSplit | None = None


@dataclass(frozen=True)
class Resolution:
    """What applies to one search: the policy mode and the entry it came from (None: none)."""

    mode: Mode
    entry: IndexPolicy | None = None

    @property
    def label(self) -> str:
        return self.entry.pattern if self.entry else ""


@dataclass(frozen=True)
class PolicyTable:
    """The policies of every ``indices`` entry, in file order."""

    entries: tuple[IndexPolicy, ...] = ()

    @property
    def any_implicit(self) -> bool:
        """Whether some search may be reranked without asking (``always``) or be blocked."""
        return any(e.mode != "on_request" or e.ab is not None for e in self.entries)

    def may_rerank_unasked(self, index: str | None) -> bool:
        """Whether a search of ``index`` that does not ask may still be reranked or bucketed
        (an ``always`` policy or an A/B split); no ``indices`` entries: every index is
        ``on_request``, so never."""
        if not self.entries:
            return False
        resolution = self.resolve(index)
        entry = resolution.entry
        return resolution.mode == "always" or (entry is not None and entry.ab is not None)

    def resolve(self, index: str | None) -> Resolution:
        names = index_names(index)
        chosen: list[IndexPolicy | None] = []
        for name in names:
            match = next((e for e in self.entries if fnmatch.fnmatchcase(name, e.pattern)), None)
            if match is not None and match.mode == "never":
                return Resolution("never", match)
            chosen.append(match)
        first = chosen[0]
        if first is not None and all(entry is first for entry in chosen):
            return Resolution(first.mode, first)
        return Resolution("on_request", None)


Intent = Literal["asked", "declined", "silent"]
Action = Literal["rerank", "strip", "untouched"]


def decide(mode: Mode, bucket: Bucket | None, intent: Intent) -> Action:
    """What to do with one search.

    ``intent``: the client asked (a ``rerank`` section or ``?rerank=true``), declined
    (``false``) or said nothing. ``strip``: forward without the client's ``rerank``;
    ``untouched``: forward as received; ``rerank``: plan and rerank (an ``always`` search the
    proxy cannot rerank honestly still goes through untouched: the caller checks).
    """
    if mode == "never" or bucket == "control":
        return "untouched" if intent == "silent" else "strip"
    if intent == "declined":
        return "strip"
    if intent == "asked" or mode == "always":
        return "rerank"
    return "untouched"


def index_names(index: str | None) -> list[str]:
    """The names of an index expression; none or ``_all`` is ``*``."""
    names = [name.strip() for name in (index or "").split(",") if name.strip()]
    return [("*" if name == "_all" else name) for name in names] or ["*"]


def stable_fraction(salt: str, key: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``key`` (SHA-256, the same in every process)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def cookie_value(header: str, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def split_entry(pattern: str, entry: Mapping[str, Any]) -> tuple[IndexPolicy, dict[str, Any]]:
    """An ``indices`` entry -> its policy and the ``rerank`` defaults left (validated)."""
    where = f"indices.{pattern}"
    mode = entry.get("rerank", "on_request")
    if mode not in MODES:
        raise ConfigError(f"must be one of {list(MODES)}, got {mode!r}", field=f"{where}.rerank")
    ab = parse_ab(entry.get("ab"), f"{where}.ab")
    if ab is not None and mode == "never":
        raise ConfigError("an A/B split needs rerank: always or on_request", field=f"{where}.ab")
    rest = {k: v for k, v in entry.items() if k not in POLICY_KEYS}
    return IndexPolicy(pattern, mode, ab), rest


def parse_ab(value: Any, where: str) -> ABSplit | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping {share, key, salt}", field=where)
    unknown = sorted(set(value) - set(_AB_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} (known: {', '.join(_AB_KEYS)})", field=where
        )
    share = value.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError("must be a number from 0 to 1", field=f"{where}.share")
    salt = value.get("salt", "")
    if not isinstance(salt, (str, int)) or isinstance(salt, bool):
        raise ConfigError("must be a string", field=f"{where}.salt")
    key = value.get("key", "random")
    if not isinstance(key, str):
        raise ConfigError("must be header:NAME, cookie:NAME or random", field=f"{where}.key")
    source, _, name = key.partition(":")
    source, name = source.strip().lower(), name.strip()
    if source == "random" and not name:
        return ABSplit(float(share), "random", "", str(salt))
    if source in ("header", "cookie") and name:
        return ABSplit(float(share), source, name, str(salt))  # type: ignore[arg-type]
    raise ConfigError(
        f"must be header:NAME, cookie:NAME or random, got {key!r}", field=f"{where}.key"
    )


__all__ = [
    "ABSplit",
    "Action",
    "Bucket",
    "IndexPolicy",
    "Intent",
    "Mode",
    "PolicyTable",
    "Resolution",
    "cookie_value",
    "decide",
    "index_names",
    "parse_ab",
    "split_entry",
    "stable_fraction",
]
