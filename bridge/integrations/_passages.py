"""What the LangChain and LlamaIndex adapters share: passage text and the rerank window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from bridge.errors import ConfigError

T = TypeVar("T")

CONTENT_KEY = "page_content"


class _BlankMissing(dict[str, Any]):
    # A document without the field renders it as "" rather than failing the whole rerank.
    def __missing__(self, key: str) -> str:
        return ""


def render_text(template: str | None, content: str, metadata: Mapping[str, Any]) -> str:
    """The passage text the model reads: the content, or ``template`` filled from the metadata.

    ``{page_content}`` in the template is the document's own text; other ``{names}`` are metadata
    keys, empty when a document lacks them.
    """
    if template is None:
        return content
    fields = _BlankMissing(metadata)
    fields[CONTENT_KEY] = content
    try:
        return template.format_map(fields)
    except (ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"cannot render template {template!r}: {exc}", field="template") from exc


def check_template(template: str | None) -> str | None:
    """Fail at construction, not at the first query, on a malformed template."""
    if template is not None:
        render_text(template, "", {})
    return template


def check_window(window: int | None) -> int | None:
    if window is not None and window < 1:
        raise ConfigError(f"must be at least 1, got {window}", field="window")
    return window


def in_window(items: Sequence[T], window: int | None) -> Sequence[T]:
    """The items the model scores: the first ``window`` (the retriever's best), or all of them."""
    return items if window is None else items[:window]
