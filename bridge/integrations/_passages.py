"""What the framework adapters share: their Ranker, the passage text and the rerank window.

Templates are rendered by the pipeline's own ``passage_texts`` (dot paths, arrays, ``{{``/``}}``),
so a template means the same in a LangChain compressor as in a ``rerank`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from bridge.config import RerankConfig
from bridge.errors import ConfigError
from bridge.pipeline.texts import passage_texts
from bridge.ranker import Ranker

T = TypeVar("T")

CONTENT_KEY = "page_content"


def open_ranker(model: str, cache_dir: str | None, max_length: int | None) -> Ranker:
    """A Ranker whose model session is shared process-wide (``bridge.scoring.shared_scorers``)."""
    if max_length is None:
        return Ranker(model_name=model, cache_dir=cache_dir)
    return Ranker(model_name=model, cache_dir=cache_dir, max_length=max_length)


def check_template(template: str | None) -> str | None:
    """Fail at construction, not at the first query, on a template naming no field."""
    if template is not None:
        RerankConfig(template=template)
    return template


def check_window(window: int | None) -> int | None:
    if window is not None and window < 1:
        raise ConfigError(f"must be at least 1, got {window}", field="window")
    return window


def render_texts(
    documents: Sequence[tuple[str, Mapping[str, Any]]], template: str | None
) -> list[str]:
    """The text of each ``(content, metadata)``: the content, or ``template`` filled from both.

    In the template, ``{page_content}`` is the document's own text and other ``{names}`` are
    metadata keys (dot paths allowed); a missing key renders as an empty string.
    """
    if template is None:
        return [content for content, _ in documents]
    hits = [{"_source": {**metadata, CONTENT_KEY: content}} for content, metadata in documents]
    return passage_texts(hits, RerankConfig(template=template)).texts


def in_window(items: Sequence[T], window: int | None) -> Sequence[T]:
    """The items the model scores: the first ``window`` (the retriever's best), or all of them."""
    return items if window is None else items[:window]
