"""The one reranking pipeline shared by the wrapper, the proxy and the integrations.

``rerank_flow`` (``bridge.pipeline.flow``) runs the steps in order without doing any I/O:
``plan_search`` -> [embed kNN query texts] -> engine search -> ``passage_texts`` + scoring
(fail-open) -> ``build_answer`` (``fuse``, reorder, paginate, restore ``_source``). It yields the
effects (``Embed``, ``Search``, ``Score``) and the doors (sync wrapper, async wrapper, proxy)
perform them. Every step is a pure function over plain dicts. Doors import the flow from
``bridge.pipeline.flow``; this package exports the steps.
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
from bridge.pipeline.source import SourceFilter, apply_source_filter, parse_source_filter
from bridge.pipeline.texts import Passages, passage_texts

__all__ = [
    "Outcome",
    "OutcomeStatus",
    "Passages",
    "Plan",
    "SourceFilter",
    "apply_source_filter",
    "build_answer",
    "extract_query_text",
    "find_query_text",
    "fuse",
    "fused_order",
    "normalize",
    "parse_source_filter",
    "passage_texts",
    "plan_search",
    "ranks",
    "unsupported_reason",
    "with_query_vectors",
]
