"""`rerank-bridge serve`: run the rerank proxy in front of an Elasticsearch/OpenSearch cluster."""

from __future__ import annotations

import argparse
import copy
import json
import os
from typing import Any

from bridge.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the rerank proxy",
        description="Serve a drop-in Elasticsearch/OpenSearch endpoint that reranks searches "
        "carrying a `rerank` section (or ?rerank=true) and passes everything else through, and "
        "the standard model APIs engines call (Cohere/Jina /v1/rerank, /v2/rerank, TEI /rerank "
        "and /embed, OpenAI /v1/embeddings). Without --upstream it is a model server only.",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        help="engine node URL, e.g. http://localhost:9200; repeat it for several nodes of one "
        "cluster (or upstream.url / upstream.urls in the config); without one: model routes only",
    )
    parser.add_argument("--config", help="settings file (.yaml, .yml or .toml)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="bind port (default 8080)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME_OR_DIR",
        help="a model to load at start-up (repeatable): a known name or a model folder; the "
        "first is the default rerank.model. Health is 503 until they load, naming any that "
        "cannot, and why. Without --model or a configured model: the default model",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.proxy.settings import CONFIG_ENV, MODELS_ENV, UPSTREAM_ENV, load_settings

    if args.workers < 1:
        raise ConfigError("must be at least 1", field="--workers")
    # validate here so a bad file fails once, with a clear message, before any worker starts
    settings = load_settings(args.config, upstream=args.upstream, models=args.model)
    os.environ[MODELS_ENV] = json.dumps(args.model)
    if settings.upstream is not None:
        os.environ[UPSTREAM_ENV] = ",".join(settings.upstream.urls)
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "timeout_keep_alive": int(settings.limits.keep_alive_s),
        # SIGTERM: in-flight requests get this long to finish (bridge.proxy.drain)
        "timeout_graceful_shutdown": max(1, round(settings.limits.drain_s)),
        "access_log": False,  # bridge.proxy.access logs one JSON line per request instead
        "server_header": False,
        # uvicorn's httptools protocol, each response's head and first body bytes in one write
        "http": "bridge.proxy.server_protocol:OneWriteHttpToolsProtocol",
        "date_header": False,
        "log_level": "DEBUG" if args.verbose else "INFO",
        "log_config": log_config(verbose=args.verbose),
    }
    app = "bridge.proxy.app:create_app_from_env"
    if args.workers > 1:  # uvicorn's supervisor: graceful shutdown per worker, without the linger
        uvicorn.run(app, **options)
        return 0
    from bridge.proxy.drain import PROCESS_DRAIN, DrainingServer

    config = uvicorn.Config(app, **options)
    limits = settings.limits
    server = DrainingServer(
        config, drain=PROCESS_DRAIN, linger_s=limits.drain_linger_s, max_linger_s=limits.drain_s
    )
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's start-up failure code
    return 0


def log_config(*, verbose: bool) -> dict[str, Any]:
    """uvicorn's logging plus the package's loggers; applied in every worker process too."""
    from uvicorn.config import LOGGING_CONFIG

    from bridge.proxy.access import LINE_FORMAT

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["bridge"] = {"format": LINE_FORMAT}
    config["handlers"]["bridge"] = {
        "class": "logging.StreamHandler",
        "formatter": "bridge",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["bridge"] = {
        "handlers": ["bridge"],
        "level": "DEBUG" if verbose else "INFO",
        "propagate": False,
    }
    # the access lines: same format and stream, written in batches (bridge.proxy.access)
    config["handlers"]["bridge_access"] = {
        **config["handlers"]["bridge"],
        "class": "bridge.proxy.access.AccessLineHandler",
    }
    config["loggers"]["bridge.proxy.access"] = {
        "handlers": ["bridge_access"],
        "level": "DEBUG" if verbose else "INFO",
        "propagate": False,
    }
    return dict(config)
