"""The one reranking pipeline shared by the wrapper, the proxy and the integrations.

``plan_search`` -> engine call (the adapter's job) -> ``score_window`` (``passage_texts`` + the
injected scorer, fail-open) -> ``build_answer`` (``fuse``, reorder, paginate, restore ``_source``).
Everything but the runner is a pure function over plain dicts.
"""

from __future__ import annotations

from bridge.pipeline.answer import Outcome, OutcomeStatus, build_answer
from bridge.pipeline.fuse import fuse, fused_order, normalize, ranks
from bridge.pipeline.plan import (
    Plan,
    find_query_text,
    plan_search,
    unsupported_reason,
    with_query_vectors,
)
from bridge.pipeline.querytext import extract_query_text
from bridge.pipeline.runner import (
    AnyScoreFn,
    AsyncScoreFn,
    ScoreFn,
    failed_outcome,
    rerank_response,
    score_window,
    score_window_async,
)
from bridge.pipeline.source import SourceFilter, apply_source_filter, parse_source_filter
from bridge.pipeline.texts import Passages, passage_texts

__all__ = [
    "AnyScoreFn",
    "AsyncScoreFn",
    "Outcome",
    "OutcomeStatus",
    "Passages",
    "Plan",
    "ScoreFn",
    "SourceFilter",
    "apply_source_filter",
    "build_answer",
    "extract_query_text",
    "failed_outcome",
    "find_query_text",
    "fuse",
    "fused_order",
    "normalize",
    "parse_source_filter",
    "passage_texts",
    "plan_search",
    "ranks",
    "rerank_response",
    "score_window",
    "score_window_async",
    "unsupported_reason",
    "with_query_vectors",
]
