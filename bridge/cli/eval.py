"""`rerank-bridge eval`: measure reranking on a judged dataset or an existing index."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.errors import EvalError

if TYPE_CHECKING:
    from bridge.config import PhaseConfig

ENGINE_ENV = "RERANK_BRIDGE_ES_URL"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure NDCG@10, MRR@10, recall and latency of BM25, kNN and reranking",
        description="Run every judged query as BM25, BM25+rerank and (where vectors exist) kNN "
        "and hybrid+rerank through the same code as the library wrapper; write results.json, "
        "results.md and PNG plots. Unjudged documents count as non-relevant.",
    )
    parser.add_argument("--engine", help=f"engine URL (default: ${ENGINE_ENV})")
    parser.add_argument(
        "--engine-kind", choices=("auto", "elasticsearch", "opensearch"), default="auto"
    )
    source = parser.add_argument_group("what to evaluate (a dataset folder or an index)")
    source.add_argument(
        "--dataset", type=Path, help="BEIR, Home Depot or Cranfield folder (temporary index)"
    )
    source.add_argument("--index", help="an existing index (with --queries and --qrels)")
    source.add_argument("--queries", type=Path, help="queries: BEIR JSONL or qid<TAB>text")
    source.add_argument("--qrels", type=Path, help="qrels: TREC or BEIR TSV")
    source.add_argument("--fields", help="text fields for passages, comma separated (--index)")
    parser.add_argument(
        "--model",
        action="append",
        help="rerank model name or directory; repeat for several (default: see README). "
        "Phases (a cascade): 'MODEL@WINDOW>MODEL@WINDOW', e.g. 'all-MiniLM-L6-v2@100>"
        "ms-marco-MiniLM-L-12-v2@20' (each phase fused by --fusion), or a JSON list of phases "
        'as in the rerank section, e.g. \'[{"model": "a", "window_size": 100, '
        '"fusion": "linear"}, {"model": "b", "window_size": 20}]\'; a cascade '
        "runs at its own windows, not --window's",
    )
    parser.add_argument("--window", default="20,50,100", help="window sizes (default 20,50,100)")
    parser.add_argument(
        "--fusion",
        action="append",
        help="fusion method (replace, linear, rrf, rescore) or a JSON object; repeatable",
    )
    parser.add_argument(
        "--chunking",
        action="append",
        help="rerank.chunking as a JSON object (e.g. '{\"tokens\": 53}'), or off (passages "
        "cut at --max-length); repeatable: each value is one more rerank system per model",
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        help="at most N judged queries: a seeded sample of a dataset (Home Depot: among queries "
        "with mixed grades), the first N with --index",
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of the query sample")
    parser.add_argument(
        "--vectors",
        action="store_true",
        help="with --dataset: embed the corpus with the bi-encoder to add kNN and hybrid",
    )
    parser.add_argument("--embedding-model", help="bi-encoder directory for vectors")
    parser.add_argument("--max-length", type=int, help="max tokens per query+passage pair")
    parser.add_argument("--out", type=Path, help="output folder (default eval-out/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _windows(text: str) -> list[int]:
    try:
        windows = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise EvalError(f"--window expects integers like 20,50,100, got {text!r}") from None
    if not windows or windows[0] < 1:
        raise EvalError("--window needs positive integers")
    return windows


def _fusion(text: str) -> str | dict[str, Any]:
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"--fusion is not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise EvalError("--fusion JSON must be an object")
        return value
    return text


def _chunking(text: str) -> Any:
    if text.strip().lower() in ("off", "none", "false"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalError(f"--chunking is not valid JSON or off: {exc.msg}") from None
    return value


def model_spec(text: str) -> str | tuple[PhaseConfig, ...]:
    """A --model value: a model, or phases (``A@100>B@20`` or a JSON list of phases)."""
    from bridge.config import parse_phases
    from bridge.errors import ConfigError

    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"--model phases are not valid JSON: {exc.msg}") from None
    elif ">" in text:
        value = []
        for part in text.split(">"):
            model, at, window = part.strip().rpartition("@")
            if not at or not model or not window.strip().isdigit():
                raise EvalError(f"--model phase {part.strip()!r} is not MODEL@WINDOW")
            value.append({"model": model, "window_size": int(window)})
    else:
        return text
    try:
        return parse_phases(value, path="--model")
    except ConfigError as exc:
        raise EvalError(exc.reason) from None


def run(args: argparse.Namespace) -> int:
    from bridge.chunking import ChunkingConfig
    from bridge.config import FusionConfig
    from bridge.eval.api import eval_dataset, eval_index
    from bridge.eval.choice import default_models
    from bridge.eval.engine import connect
    from bridge.eval.systems import EvalSettings

    if not args.verbose:  # one INFO line per HTTP request drowns the progress bar
        for name in ("elastic_transport", "opensearch", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
    url = args.engine or os.environ.get(ENGINE_ENV)
    if not url:
        raise EvalError(f"--engine URL is required (or set {ENGINE_ENV})")
    if (args.dataset is None) == (args.index is None):
        raise EvalError("give either --dataset DIR or --index NAME --queries FILE --qrels FILE")
    if args.index is not None and (args.queries is None or args.qrels is None):
        raise EvalError("--index needs --queries FILE and --qrels FILE")
    fusions = [_fusion(f) for f in (args.fusion or ["replace"])]
    for fusion in fusions:
        FusionConfig.from_value(fusion, path="--fusion")  # fail before indexing anything
    chunkings = [
        ChunkingConfig.from_value(_chunking(c), path="--chunking") for c in args.chunking or ["off"]
    ]
    settings = EvalSettings(
        models=[model_spec(m) for m in args.model] if args.model else default_models(),
        windows=_windows(args.window),
        fusions=fusions,
        chunkings=chunkings,
        max_length=args.max_length,
        progress=not args.no_progress,
    )
    client, kind = connect(url, None if args.engine_kind == "auto" else args.engine_kind)
    try:
        if args.dataset is not None:
            out = args.out or Path("eval-out") / args.dataset.resolve().name
            result = eval_dataset(
                client,
                args.dataset,
                settings,
                out,
                engine_name=kind,
                max_queries=args.max_queries,
                seed=args.seed,
                vectors=args.vectors,
                embedding_model=args.embedding_model,
            )
        else:
            out = args.out or Path("eval-out") / args.index
            fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
            result = eval_index(
                client,
                args.index,
                args.queries,
                args.qrels,
                settings,
                out,
                engine_name=kind,
                text_fields=fields,
                max_queries=args.max_queries,
                embedding_model=args.embedding_model,
            )
    finally:
        client.close()
    print((result.files["markdown"]).read_text(encoding="utf-8"))
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0
