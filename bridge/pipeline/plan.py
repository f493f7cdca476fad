"""Plan a reranked search: read the request, widen it for the engine, remember what to undo (pure).

``plan_search`` takes the search body (and the URL/query parameters, as the proxy receives them or
as the wrapper splits its keyword arguments) and returns a ``Plan``: the body and parameters to send
to the engine, the query text, the page the caller asked for, and the caller's ``_source`` filter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bridge.config import RerankConfig
from bridge.errors import ConfigError, UnsupportedSearchError
from bridge.pipeline.querytext import (
    clauses,
    clean_lucene,
    extract_query_text,
    knn_query_texts,
    retriever_query_text,
)
from bridge.pipeline.source import SourceFilter, parse_filter_path, parse_source_filter, widen
from bridge.pipeline.texts import needed_fields

DEFAULT_SIZE = 10
PlanStatus = Literal["rerank", "skipped", "unsupported"]

_SOURCE_PARAMS = ("_source", "_source_includes", "_source_excludes")
_PAGE_PARAMS = ("from", "from_", "size")
# Applied to the answer instead: the engine response must keep _id, _score and _source.
_ANSWER_PARAMS = ("filter_path",)


@dataclass(frozen=True)
class Plan:
    """What to ask the engine, and what the caller asked for.

    ``status`` is ``"rerank"``; ``"skipped"`` when there is nothing to rerank (``size: 0``); or
    ``"unsupported"`` when the search cannot be reranked honestly and ``on_failure="original"``
    lets it through un-reranked (``reason`` says why). For the latter two, ``body`` and
    ``params`` are the caller's own.
    """

    config: RerankConfig
    body: dict[str, Any]
    params: dict[str, Any]
    status: PlanStatus = "rerank"
    reason: str | None = None
    query_text: str = ""
    from_: int = 0
    size: int = DEFAULT_SIZE
    window: int = 0
    fetch_size: int = 0
    source: SourceFilter = field(default_factory=SourceFilter)
    restore_source: bool = False
    embed_texts: tuple[str, ...] = ()
    engine: str = "elasticsearch"
    filter_path: tuple[str, ...] = ()
    added_fields: tuple[str, ...] = ()  # asked for in `fields` for the phases, not the caller


def plan_search(
    body: Mapping[str, Any] | None,
    config: RerankConfig,
    params: Mapping[str, Any] | None = None,
    *,
    engine: str = "elasticsearch",
) -> Plan:
    """Plan the engine request for a reranked search.

    ``engine`` (``"elasticsearch"`` or ``"opensearch"``) selects whose ``_source`` filtering rules
    the restored ``_source`` follows; they differ for wildcard patterns.

    Raises ``UnsupportedSearchError`` for searches that cannot be reranked honestly (non-``_score``
    sort, scroll, search_after, point in time) unless ``config.on_failure`` is
    ``"original"``, and ``ConfigError`` when no query text can be found.
    """
    caller_body = {k: v for k, v in (body or {}).items() if k != "rerank"}
    caller_params = dict(params or {})
    embed = tuple(_embed_texts(caller_body))

    reason = unsupported_reason(caller_body, caller_params)
    if reason is not None:
        if config.on_failure == "error":
            raise UnsupportedSearchError(reason, field="rerank")
        return Plan(
            config,
            caller_body,
            caller_params,
            "unsupported",
            reason,
            embed_texts=embed,
            engine=engine,
        )

    from_, size = _page(caller_body, caller_params)
    if size == 0:
        return Plan(
            config,
            caller_body,
            caller_params,
            "skipped",
            "size is 0",
            embed_texts=embed,
            engine=engine,
        )
    fetch = max(config.window_size, from_ + size)
    if fetch > config.max_window:
        raise UnsupportedSearchError(
            f"from + size = {from_ + size} exceeds max_window {config.max_window}; page within "
            "the window or raise rerank.max_window",
            field="rerank.max_window",
        )

    query_text = config.query or find_query_text(caller_body, caller_params)
    if not query_text:
        raise ConfigError(
            "no query text found in match, match_phrase, multi_match, combined_fields, "
            "query_string, simple_query_string or knn.query_text; give rerank.query",
            field="rerank.query",
        )

    engine_body = {k: v for k, v in caller_body.items() if k not in ("from", "from_")}
    engine_params = {
        k: v for k, v in caller_params.items() if k not in _PAGE_PARAMS + _ANSWER_PARAMS
    }
    engine_body["from"] = 0
    engine_body["size"] = fetch

    requested = parse_source_filter(
        caller_params.get("_source", caller_body.get("_source")),
        caller_params.get("_source_includes"),
        caller_params.get("_source_excludes"),
    )
    engine_filter = widen(requested, needed_fields(config), engine)
    restore = engine_filter != requested
    if restore:
        for name in _SOURCE_PARAMS:
            engine_params.pop(name, None)
        if engine_filter.is_full:
            engine_body.pop("_source", None)
        else:
            engine_body["_source"] = engine_filter.to_request()
    added = _ask_for_vectors(engine_body, config.vector_fields)

    return Plan(
        config=config,
        body=engine_body,
        params=engine_params,
        query_text=query_text,
        from_=from_,
        size=size,
        window=config.window_size,
        fetch_size=fetch,
        source=requested,
        restore_source=restore,
        embed_texts=embed,
        engine=engine,
        filter_path=parse_filter_path(caller_params.get("filter_path")),
        added_fields=added,
    )


def _ask_for_vectors(body: dict[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """Ask for the phases' stored vector fields in the body's ``fields`` (Elasticsearch 9
    leaves vectors out of ``_source`` by default; ``fields`` returns them on both engines);
    the names the caller did not ask for, to take out of the answer."""
    if not names:
        return ()
    current = body.get("fields")
    listed = list(current) if isinstance(current, (list, tuple)) else []
    asked = {f if isinstance(f, str) else f.get("field") for f in listed if isinstance(f, dict)}
    asked.update(f for f in listed if isinstance(f, str))
    added = tuple(name for name in names if name not in asked)
    if added:
        body["fields"] = [*listed, *added]
    return added


def unsupported_reason(body: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    """Why a search cannot be reranked honestly, or ``None`` when it can."""
    if params.get("scroll") is not None:
        return "scroll searches cannot be reranked"
    if body.get("search_after") is not None:
        return "search_after cannot be reranked (the window is not stable across pages)"
    if body.get("pit") is not None:
        return "point-in-time searches cannot be reranked"
    for sort in (body.get("sort"), params.get("sort")):
        if sort is not None and not _is_score_sort(sort):
            return "only the default _score sort can be reranked"
    return None


def find_query_text(body: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str | None:
    """The reranking query: full-text clauses of ``query`` (or of a ``retriever``'s queries), then
    ``q``, then ``knn.query_text``."""
    text = extract_query_text(body.get("query")) or retriever_query_text(body.get("retriever"))
    if text:
        return text
    q = (params or {}).get("q")
    if isinstance(q, str) and clean_lucene(q):
        return clean_lucene(q)
    for knn_text in (*knn_query_texts(body), *(t for t, _, _ in _query_knn_slots(body))):
        return knn_text
    return None


def with_query_vectors(plan: Plan, vectors: Sequence[Sequence[float]]) -> Plan:
    """Replace each ``knn`` ``query_text`` by its embedding, in ``plan.embed_texts`` order."""
    if len(vectors) != len(plan.embed_texts):
        raise ConfigError(
            f"{len(plan.embed_texts)} knn query texts but {len(vectors)} vectors", field="knn"
        )
    body = dict(plan.body)
    for key in ("knn", "query"):
        if key in body:
            body[key] = copy.deepcopy(body[key])
    remaining = iter([float(x) for x in vector] for vector in vectors)
    for _, slot, vector_key in _knn_slots(body):
        slot.pop("query_text")
        slot[vector_key] = next(remaining)
    return replace(plan, body=body, embed_texts=())


def _embed_texts(body: Mapping[str, Any]) -> Iterator[str]:
    for text, _, _ in _knn_slots(body):
        yield text


def _knn_slots(body: Mapping[str, Any]) -> Iterator[tuple[str, MutableMapping[str, Any], str]]:
    # Top-level ES knn (object or list): query_text -> query_vector.
    knn = body.get("knn")
    for clause in knn if isinstance(knn, list) else [knn]:
        if isinstance(clause, MutableMapping) and isinstance(clause.get("query_text"), str):
            yield clause["query_text"], clause, "query_vector"
    yield from _query_knn_slots(body)


def _query_knn_slots(
    body: Mapping[str, Any],
) -> Iterator[tuple[str, MutableMapping[str, Any], str]]:
    yield from _walk_knn(body.get("query"))


def _walk_knn(node: Any) -> Iterator[tuple[str, MutableMapping[str, Any], str]]:
    for key, value in clauses(node):
        if key == "knn" and isinstance(value, MutableMapping):
            if "field" in value:  # ES knn query: {"field": "vec", "query_text": ...}
                if isinstance(value.get("query_text"), str):
                    yield value["query_text"], value, "query_vector"
            else:  # OpenSearch knn query: {"vec": {"query_text": ..., "k": 10}}
                for inner in value.values():
                    if isinstance(inner, MutableMapping) and isinstance(
                        inner.get("query_text"), str
                    ):
                        yield inner["query_text"], inner, "vector"
        else:
            yield from _walk_knn(value)


def _page(body: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[int, int]:
    raw_from = params.get("from", params.get("from_", body.get("from", body.get("from_", 0))))
    raw_size = params.get("size", body.get("size", DEFAULT_SIZE))
    return _non_negative(raw_from, "from"), _non_negative(raw_size, "size")


def _non_negative(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"expected a non-negative integer, got {value!r}", field=name)
    return value


def _is_score_sort(sort: Any) -> bool:
    items = sort if isinstance(sort, list) else [sort]
    for item in items:
        if isinstance(item, str):
            for part in item.split(","):
                name, _, order = part.strip().partition(":")
                if name != "_score" or order not in ("", "desc"):
                    return False
        elif isinstance(item, Mapping) and list(item) == ["_score"]:
            spec = item["_score"]
            order = spec.get("order", "desc") if isinstance(spec, Mapping) else spec
            if order != "desc":
                return False
        else:
            return False
    return True


__all__ = ["Plan", "find_query_text", "plan_search", "unsupported_reason", "with_query_vectors"]
