"""A bi-encoder phase over the vectors stored in the index (``vector_field``), a step of the flow.

``rerank-bridge embed`` writes each document's vector at index time; the engine returns it with
the hits (the plan asks for the field in ``fields``). The phase then embeds the query and only
the hits without a usable stored vector (none, not numbers, another dimension, or written by
another model per the index's ``_meta``), and scores each hit by the cosine of the two vectors:
what the bi-encoder's own ``score`` computes after embedding both texts.

Effects: ``CheckVectors`` (once per index and model; a door without ``check_vectors`` fails
open: the vectors are used after the dimension check, and ``explain`` says they were not
verified) and one or two ``Embed`` (the query with the hits lacking a vector; then the hits
whose vector had the wrong dimension, known only once the query's dimension is).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bridge.errors import ModelError
from bridge.pipeline.effects import CheckVectors, Embed

Vector = list[float]


@dataclass
class VectorReport:
    """How a ``vector_field`` phase got its vectors (``explain``: ``rerank.phases[i].vectors``)."""

    field: str
    stored: int = 0  # hits scored with their stored vector
    embedded: int = 0  # hits embedded now (no usable stored vector)
    missing: int = 0  # ... of which had no vector in the field
    wrong_dimension: int = 0  # ... had one of another dimension than the model's
    other_model: int = 0  # ... came from an index whose _meta names another model or limit
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "field": self.field,
            "stored": self.stored,
            "embedded": self.embedded,
            "missing": self.missing,
            "wrong_dimension": self.wrong_dimension,
            "other_model": self.other_model,
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def stored_vector(hit: Mapping[str, Any], name: str) -> Vector | None:
    """The vector in ``hit``'s ``fields`` (or ``_source``) under ``name``, if it is one: a
    non-empty list of finite numbers."""
    found = hit.get("fields")
    value = found.get(name) if isinstance(found, Mapping) else None
    if value is None:
        value = hit.get("_source")
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # a multi-valued field's one value
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        return None
    vector = [float(x) for x in value]
    return vector if all(math.isfinite(x) for x in vector) else None


def stored_vector_scores(
    model: str,
    max_length: int | None,
    name: str,
    query: str,
    passages: Sequence[str],
    vectors: Sequence[Vector | None],
    indices: Sequence[str | None],
) -> Generator[CheckVectors | Embed, Any, tuple[list[float], VectorReport]]:
    """Cosine scores of ``passages`` against ``query``, from the stored ``vectors`` where usable
    (``indices``: each hit's ``_index``), embedding the rest; and how each vector was got."""
    report = VectorReport(name)
    usable = list(vectors)
    rejected = yield from _other_model_indices(model, max_length, name, indices, report)
    for i, index in enumerate(indices):
        if usable[i] is not None and index in rejected:
            usable[i] = None
            report.other_model += 1
    report.missing = sum(v is None for v in vectors)
    first = [i for i, v in enumerate(usable) if v is None]
    texts = (query, *(passages[i] for i in first))
    answer = _matrix((yield Embed(model, texts, max_length)), 1 + len(first))
    query_vector, dims = answer[0], answer.shape[1]
    matrix = np.zeros((len(passages), dims), dtype=np.float32)
    if first:
        matrix[first] = answer[1:]
    wrong = [i for i, v in enumerate(usable) if v is not None and len(v) != dims]
    for i, vector in enumerate(usable):
        if vector is not None and len(vector) == dims:
            matrix[i] = vector
    if wrong:
        report.wrong_dimension = len(wrong)
        report.warnings.append(
            f"{len(wrong)} stored vectors in {name!r} do not have the model's {dims} dimensions; "
            "embedded instead"
        )
        again = tuple(passages[i] for i in wrong)
        matrix[wrong] = _matrix((yield Embed(model, again, max_length)), len(wrong))
    report.embedded = len(first) + len(wrong)
    report.stored = len(passages) - report.embedded
    scores = _normalised(matrix) @ _normalised(query_vector[None, :])[0]
    return [float(s) for s in scores.astype(np.float64)], report


def _other_model_indices(
    model: str,
    max_length: int | None,
    name: str,
    indices: Sequence[str | None],
    report: VectorReport,
) -> Generator[CheckVectors, Any, set[str]]:
    """The indices whose ``_meta`` says another model wrote ``name``, or this model with texts
    cut at another token limit than the phase embeds at (asked once per flow)."""
    names = tuple(sorted({i for i in indices if i}))
    if not names:
        return set()
    try:
        verdicts = yield CheckVectors(model, name, names, max_length)
    except Exception as exc:  # fail open: use the vectors after the dimension check
        report.warnings.append(f"could not check which model wrote {name!r}: {exc}")
        return set()
    rejected: set[str] = set()
    for index in names:
        verdict = verdicts.get(index) if isinstance(verdicts, Mapping) else None
        if verdict:
            rejected.add(index)
            report.warnings.append(f"{index}: {verdict}; embedded instead")
    return rejected


def _matrix(raw: Any, rows: int) -> npt.NDArray[np.float32]:
    try:
        matrix = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"embedding returned no vectors: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.shape[1] == 0:
        raise ModelError(f"embedding returned shape {matrix.shape} for {rows} texts")
    if not np.isfinite(matrix).all():
        raise ModelError("embedding returned a non-finite value")
    return matrix


def _normalised(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = matrix / np.maximum(norms, np.float32(1e-12))
    return result


__all__ = ["VectorReport", "stored_vector", "stored_vector_scores"]
