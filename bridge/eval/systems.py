"""Run every query as BM25, BM25+rerank, kNN and hybrid+rerank through `RerankingSearch`.

The reranking is the wrapper's own code path (plan, texts, score, fuse, answer), so the figures
describe what users get. Each system's ranked ids are scored with ir-measures; latency is the wall
time of the whole search call per query (plus query embedding for kNN and hybrid).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.chunking import ChunkingConfig
from bridge.config import PhaseConfig
from bridge.errors import BridgeError, EvalError, UpstreamError
from bridge.eval.choice import display_name
from bridge.eval.ir_metrics import evaluate
from bridge.eval.progress import progress_bar
from bridge.eval.results import EvalReport, SystemResult

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], Any]  # texts -> (n, dim) float array
FAIL_OPEN_STATUSES = frozenset({"timeout", "model_error", "partial", "skipped", "unsupported"})


@dataclass(frozen=True)
class EvalSettings:
    """What to run: rerank models x windows x fusions x chunkings, on which fields.

    ``chunkings``: ``None`` (passages cut at ``max_length``) and/or ``rerank.chunking`` values.

    A model is a name/directory, or phases (a tuple of ``PhaseConfig``: a cascade, whose
    windows are its own, so it runs once per fusion, not once per window).
    """

    models: Sequence[str | tuple[PhaseConfig, ...]]
    windows: Sequence[int] = (20, 50, 100)
    fusions: Sequence[str | Mapping[str, Any]] = ("replace",)
    chunkings: Sequence[ChunkingConfig | None] = (None,)
    text_fields: Sequence[str] = ("title", "text")
    vector_field: str | None = None
    max_length: int | None = None
    progress: bool = True
    warmup: bool = True

    def __post_init__(self) -> None:
        if not self.windows or min(self.windows) < 1:
            raise EvalError("windows must be positive integers")
        if not self.text_fields:
            raise EvalError("at least one text field is needed to build passages")


@dataclass
class _System:
    system: str
    depth: int
    model: str | None = None
    window: int | None = None
    fusion: str | Mapping[str, Any] | None = None
    chunking: ChunkingConfig | None = None
    phases: tuple[PhaseConfig, ...] = ()
    runs: dict[str, list[str]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    fallbacks: int = 0


def chunking_name(chunking: ChunkingConfig | None) -> str | None:
    """A short label: ``chunks 128/96 max`` (tokens/stride aggregate, ``top N`` with size)."""
    if chunking is None:
        return None
    top = f" top {chunking.size}" if chunking.size is not None else ""
    return f"chunks {chunking.tokens}/{chunking.step} {chunking.aggregate}{top}"


def _fusion_name(fusion: str | Mapping[str, Any] | None) -> str | None:
    if fusion is None or isinstance(fusion, str):
        return fusion
    return str(fusion.get("method", "replace"))


class EvalRunner:
    """Evaluate systems over one existing index."""

    def __init__(
        self,
        client: Any,
        index: str,
        settings: EvalSettings,
        *,
        embed: Embed | None = None,
        engine_name: str = "elasticsearch",
    ) -> None:
        from bridge.search import RerankingSearch

        self.client = client
        self.index = index
        self.settings = settings
        self.embed = embed if settings.vector_field else None
        self.engine_name = engine_name
        self.search = RerankingSearch(client)

    # -- request bodies ----------------------------------------------------------------------

    def _text_query(self, text: str) -> dict[str, Any]:
        fields = list(self.settings.text_fields)
        if len(fields) == 1:
            return {"match": {fields[0]: {"query": text}}}
        return {"multi_match": {"query": text, "fields": fields}}

    def _knn(self, text: str, k: int) -> dict[str, Any]:
        if self.embed is None or self.settings.vector_field is None:
            raise EvalError("kNN needs a bi-encoder and a vector field")
        vector = [float(x) for x in self.embed([text])[0]]
        return {
            "field": self.settings.vector_field,
            "query_vector": vector,
            "k": k,
            "num_candidates": max(100, 2 * k),
        }

    def _rerank(self, system: _System, text: str) -> dict[str, Any]:
        if system.phases:
            chosen: dict[str, Any] = {"phases": [p.to_dict() for p in system.phases]}
        else:
            chosen = {"window_size": system.window, "model": system.model}
        return {
            **chosen,
            "fields": list(self.settings.text_fields),
            "query": text,
            "fusion": system.fusion or "replace",
            "max_length": self.settings.max_length,
            "chunking": system.chunking,
            # no budget: an eval measures the model, not the fail-open path (counted if it fires)
            "timeout_ms": None,
            "explain": True,
        }

    def _query_once(self, system: _System, text: str) -> list[str]:
        # body= style: opensearch-py has no `query=`/`knn=` keyword arguments
        body: dict[str, Any] = {"size": system.depth}
        if system.system in ("bm25", "bm25+rerank", "hybrid+rerank"):
            body["query"] = self._text_query(text)
        if system.system in ("knn", "hybrid+rerank"):
            body["knn"] = self._knn(text, system.depth)
        kwargs: dict[str, Any] = {"index": self.index, "body": body}
        if system.model is not None:
            kwargs["rerank"] = self._rerank(system, text)
        try:
            response = self.search.search(**kwargs)
        except BridgeError:
            raise
        except Exception as exc:  # the client's transport/API errors: one line, not a traceback
            raise UpstreamError(f"{_label(system)} search failed for {text!r}: {exc}") from exc
        if system.model is not None:
            summary = response.get("rerank") or {}
            if summary.get("status") in FAIL_OPEN_STATUSES:
                system.fallbacks += 1
        hits = response["hits"]["hits"]
        return [str(hit["_id"]) for hit in hits]

    # -- the run -----------------------------------------------------------------------------

    def depth(self) -> int:
        """The deepest window of any system: the windows, and each cascade's first phase."""
        cascades = [m[0].window_size for m in self.settings.models if not isinstance(m, str)]
        return max([*self.settings.windows, *cascades])

    def systems(self) -> list[_System]:
        s = self.settings
        depth = self.depth()
        out = [_System("bm25", depth)]
        if self.embed is not None:
            out.append(_System("knn", depth))
        for model in s.models:
            if not isinstance(model, str):  # phases: their own windows
                label, first = phases_label(model), model[0].window_size
                for fusion in s.fusions:
                    for chunking in s.chunkings:
                        cascade = (first, label, first, fusion, chunking, model)
                        out.append(_System("bm25+rerank", *cascade))
                        if self.embed is not None:
                            out.append(_System("hybrid+rerank", *cascade))
                continue
            for fusion in s.fusions:
                for chunking in s.chunkings:
                    for window in sorted(set(s.windows)):
                        grid = (window, model, window, fusion, chunking)
                        out.append(_System("bm25+rerank", *grid))
                        if self.embed is not None:
                            out.append(_System("hybrid+rerank", *grid))
        return out

    def run(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        dataset: str,
        notes: Sequence[str] = (),
    ) -> EvalReport:
        self._check_index()
        warnings: list[str] = []
        unjudged = [qid for qid in queries if qid not in qrels]
        if unjudged:
            warnings.append(f"{len(unjudged)} queries have no judgments and were skipped")
            logger.warning("%d queries have no judgments; skipped", len(unjudged))
        judged = {qid: text for qid, text in queries.items() if qid in qrels}
        if not judged:
            raise EvalError("none of the queries has judgments in the qrels file")
        systems = self.systems()
        if self.settings.warmup:
            self._warm_up(systems, next(iter(judged.values())))
        bar = progress_bar(len(systems) * len(judged), unit="q", enabled=self.settings.progress)
        try:
            for system in systems:
                bar.set_description(_label(system))
                for qid, text in judged.items():
                    started = time.perf_counter()
                    system.runs[qid] = self._query_once(system, text)
                    system.latency_ms.append((time.perf_counter() - started) * 1000.0)
                    bar.update(1)
        finally:
            bar.close()
        judged_qrels = {qid: qrels[qid] for qid in judged}
        results = [self._score(system, judged_qrels) for system in systems]
        for result in results:
            if result.fallbacks:
                warnings.append(
                    f"{result.label}: {result.fallbacks} queries fell back to engine order"
                )
        return EvalReport(
            dataset=dataset,
            engine=self.engine_name,
            queries=len(judged),
            depth=self.depth(),
            systems=results,
            notes=list(notes),
            warnings=warnings,
        )

    def _score(self, system: _System, qrels: Mapping[str, Mapping[str, int]]) -> SystemResult:
        scores = evaluate(qrels, system.runs, recall_depths=[system.depth])
        rename = {f"recall@{system.depth}": "recall@window"}
        return SystemResult(
            system=system.system,
            model=(system.model if system.phases else display_name(system.model))
            if system.model
            else None,
            window=system.window if system.model else None,
            fusion=_fusion_name(system.fusion),
            chunking=chunking_name(system.chunking),
            mean={rename.get(k, k): v for k, v in scores.mean.items()},
            per_query={
                qid: {rename.get(k, k): v for k, v in values.items()}
                for qid, values in scores.per_query.items()
            },
            latency_ms=system.latency_ms,
            fallbacks=system.fallbacks,
            depth=system.depth,
        )

    def _check_index(self) -> None:
        try:
            exists = bool(self.client.indices.exists(index=self.index))
        except Exception as exc:  # the client raises its own transport errors
            raise EvalError(f"cannot check index {self.index!r}: {exc}") from None
        if not exists:
            raise EvalError(f"index {self.index!r} does not exist")

    def _warm_up(self, systems: Sequence[_System], text: str) -> None:
        """Load each model session once so the first timed query does not pay for it."""
        seen: set[tuple[str, str]] = set()
        for system in systems:
            key = (system.system, str(system.model))
            if key not in seen:
                seen.add(key)
                fallbacks = system.fallbacks
                self._query_once(system, text)
                system.fallbacks = fallbacks


def phases_label(phases: Sequence[PhaseConfig]) -> str:
    """A cascade's name in tables: ``bi@100>ce@20`` (each phase's display name and window)."""
    return ">".join(f"{display_name(p.model)}@{p.window_size}" for p in phases)


def _label(system: _System) -> str:
    shown = system.model if system.phases else display_name(system.model or "")
    model = f" {shown}" if system.model else ""
    window = f" w={system.window}" if system.window else ""
    chunks = f" {chunking_name(system.chunking)}" if system.chunking else ""
    return f"{system.system}{model}{window}{chunks}"
