"""`rerank-bridge connect opensearch|elasticsearch`: the engine's own reranker calls the bridge."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bridge.config import DEFAULT_MODEL, MODEL_API_TOKEN_ENV


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "connect",
        help="make OpenSearch's rerank processor or Elasticsearch's reranker call the bridge",
        description="Create (idempotently) what an engine needs to rerank through a running "
        "`rerank-bridge serve`, then print a ready search.",
    )
    engines = parser.add_subparsers(dest="connect_engine", required=True)
    for name, help_text in (
        ("opensearch", "ML Commons connector + remote model + search pipeline (`rerank`)"),
        ("elasticsearch", "`custom` rerank inference endpoint for text_similarity_reranker"),
    ):
        action = engines.add_parser(name, help=help_text)
        action.add_argument("--engine", required=True, help="engine URL (user:pass@ allowed)")
        action.add_argument("--bridge", required=True, help="URL the engine reaches the bridge at")
        action.add_argument("--model", default=DEFAULT_MODEL, help="model the bridge serves")
        action.add_argument(
            "--token",
            default=os.environ.get(MODEL_API_TOKEN_ENV),
            help=f"the bridge's model_api token (default: ${MODEL_API_TOKEN_ENV})",
        )
        action.add_argument("--index", default="my-index", help="index for the printed search")
        action.add_argument("--query", default="cordless drill", help="text of the printed search")
        action.add_argument("--dry-run", action="store_true", help="print the requests only")
        if name == "opensearch":
            action.add_argument("--pipeline", default="rerank-bridge", help="search pipeline")
            action.add_argument(
                "--fields", default="title", help="document fields to rerank on, comma-separated"
            )
            action.set_defaults(handler=_opensearch)
        else:
            action.add_argument("--inference-id", default="rerank-bridge", help="endpoint id")
            action.add_argument("--field", default="title", help="field the reranker reads")
            action.set_defaults(handler=_elasticsearch)


def _engine(args: argparse.Namespace) -> Any:
    from bridge.connect import EngineHttp

    return EngineHttp(args.engine, dry_run=args.dry_run, out=sys.stdout)


def _print(title: str, value: Any) -> None:
    print(f"# {title}")
    print(json.dumps(value, indent=2))


def _opensearch(args: argparse.Namespace) -> int:
    from bridge.connect import OpenSearchPlan, connect_opensearch

    fields = tuple(f.strip() for f in args.fields.split(",") if f.strip())
    plan = OpenSearchPlan(args.bridge, args.model, args.pipeline, fields, args.token)
    setup = connect_opensearch(_engine(args), plan)
    if args.dry_run:
        return 0
    done = ", ".join(setup.created) or "nothing (all in place)"
    print(f"# connector {setup.connector_id}, model {setup.model_id}; created: {done}")
    _print(f"search pipeline {setup.pipeline}", plan.search_pipeline(setup.model_id))
    _print("a search through it", plan.example_search(args.index, args.query))
    return 0


def _elasticsearch(args: argparse.Namespace) -> int:
    from bridge.connect import ElasticsearchPlan, connect_elasticsearch

    plan = ElasticsearchPlan(args.bridge, args.model, args.inference_id, args.field, args.token)
    created = connect_elasticsearch(_engine(args), plan)
    if args.dry_run:
        return 0
    print(f"# inference endpoint {plan.inference_id}: {', '.join(created) or 'already in place'}")
    _print("a search through it", plan.example_search(args.index, args.query))
    return 0
