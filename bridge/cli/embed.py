"""`rerank-bridge embed`: store a bi-encoder's vectors of one text field in an index (index-time
work), for a phase with ``vector_field`` to read instead of embedding every hit per query."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bridge.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="store a bi-encoder's vectors of a text field in an index (for vector_field phases)",
        description="Embed FIELD of every document of INDEX with a bi-encoder and store the "
        "vectors in INTO (dense_vector on Elasticsearch, knn_vector on OpenSearch; the field is "
        "mapped when missing) by bulk partial updates; the model's fingerprint and the token limit "
        "the texts were cut at go into the mapping's _meta, so a phase can tell vectors of "
        "another model, or of texts cut at another max_length, apart and embed those hits live.",
    )
    parser.add_argument("--engine", required=True, help="engine URL (user:pass@ allowed)")
    parser.add_argument("--index", required=True, help="index (or alias) to update")
    parser.add_argument(
        "--field",
        default="title",
        help='text field (dot path) to embed, as a phase with "fields": [FIELD] reads it '
        "(default: title)",
    )
    parser.add_argument("--into", help="vector field to write (default: FIELD_vector)")
    parser.add_argument("--model", required=True, help="bi-encoder: a local directory or name")
    parser.add_argument(
        "--max-length",
        type=int,
        help="token limit the texts are cut at (default: the model's default); a phase reads "
        "the stored vectors only when its own max_length (phase, rerank.max_length or the "
        "proxy's) gives the same limit, else it embeds those hits live",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="documents per bulk request")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from bridge.connect.engine_http import EngineHttp
    from bridge.models.resolver import resolve_model
    from bridge.scoring import load_scorer
    from bridge.vectors.fingerprint import VectorsMeta, model_fingerprint
    from bridge.vectors.writer import write_vectors

    into = args.into or f"{args.field}_vector"
    files = resolve_model(args.model)
    if files.kind != "bi":
        raise ConfigError(f"{files.name} is a {files.kind}, not a bi-encoder", field="--model")
    if args.max_length is not None and args.max_length < 1:
        raise ConfigError(
            f"--max-length must be at least 1, got {args.max_length}", field="--max-length"
        )
    scorer = load_scorer(
        files.directory, max_length=args.max_length, embedding_cache_bytes=0, cache_size=0
    )
    dims = int(scorer.embed(["dimension probe"]).shape[1])
    limit = int(scorer.max_length)  # what the texts are cut at (the tokenizer may cap it)
    meta = VectorsMeta(files.name, model_fingerprint(files), dims, args.field, limit)
    report = write_vectors(
        EngineHttp(args.engine, timeout_s=300.0),
        args.index,
        field=args.field,
        into=into,
        embed=scorer.embed,
        meta=meta,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(json.dumps({**report.to_dict(), "model": files.name, "max_length": limit}))
    return 0
