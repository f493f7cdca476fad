"""`rerank-bridge node start|stop|status`: a detached local Elasticsearch/OpenSearch node."""

from __future__ import annotations

import argparse
import base64
import contextlib
import shutil
from pathlib import Path
from typing import Any

from bridge.devtools.localnode import DEFAULT_VERSIONS, ENGINES, LocalNode, terminate_group
from bridge.devtools.localnode.plugins import plugin_closure
from bridge.devtools.localnode.process import get_json, group_alive
from bridge.devtools.localnode.state import (
    NodeState,
    clear_state,
    load_state,
    nodes_dir,
    save_state,
    state_path,
    work_dir_for,
)
from bridge.errors import NodeError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run a local Elasticsearch/OpenSearch node (Maven Central integ-test zip)",
        description="Start, stop or inspect a local single-node cluster on 127.0.0.1. Nodes belong "
        "to the project they are started from (the nearest folder with .git or pyproject.toml): "
        "another checkout neither sees nor stops them.",
    )
    actions = parser.add_subparsers(dest="node_command", required=True)
    for name, handler, help_text in (
        ("start", _start, "start a node in the background and print its URL"),
        ("stop", _stop, "stop the node and remove its data"),
        ("status", _status, "print the node's URL and health, exit 1 when not running"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--engine", choices=sorted(ENGINES), default="elasticsearch")
        action.set_defaults(handler=handler)
        if name == "start":
            action.add_argument(
                "--version",
                help="engine version (default: "
                + ", ".join(f"{engine} {version}" for engine, version in DEFAULT_VERSIONS.items())
                + ")",
            )
            action.add_argument(
                "--heap-mb", type=int, help="JVM heap (default 512; 1024 with --plugins ml)"
            )
            action.add_argument(
                "--timeout", type=float, default=240.0, help="seconds to wait for health"
            )
            action.add_argument(
                "--no-knn", action="store_true", help="OpenSearch: skip the k-NN plugin"
            )
            action.add_argument(
                "--plugins",
                default="",
                help="OpenSearch plugins, comma-separated: ml, neural, knn, job-scheduler "
                "(their dependencies are added; `ml,neural` needs --version 3.6.0, the "
                "rerank processor and ML Commons remote models)",
            )
            action.add_argument(
                "--security",
                action="store_true",
                help="Elasticsearch: security on (HTTP TLS with a generated CA, the `elastic` "
                "password printed and kept in <work dir>/elastic-password; needs the `node` extra)",
            )


def _running(engine: str) -> NodeState | None:
    state = load_state(engine)
    if state is not None and not group_alive(state.pid):
        _cleanup(state)
        return None
    return state


def _cleanup(state: NodeState) -> None:
    shutil.rmtree(Path(state.work_dir), ignore_errors=True)
    clear_state(state.engine)
    with contextlib.suppress(OSError):  # the project's folder, once no node of it is left
        nodes_dir().rmdir()


def _start(args: argparse.Namespace) -> int:
    existing = _running(args.engine)
    if existing is not None:
        print(existing.url)
        return 0
    work = work_dir_for(args.engine)
    work.mkdir(parents=True, exist_ok=True)
    plugins = tuple(name for name in args.plugins.split(",") if name.strip())
    node = LocalNode(
        args.engine,
        args.version,
        security=args.security,
        work_dir=work,
        heap_mb=args.heap_mb or (1024 if "ml" in plugin_closure(plugins) else 512),
        knn=False if args.no_knn else None,
        plugins=plugins or None,
        startup_timeout=args.timeout,
    )
    try:
        url = node.start()
    except NodeError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    assert node.pid is not None
    save_state(
        NodeState(
            engine=args.engine, version=node.version, pid=node.pid, url=url, work_dir=str(work)
        )
    )
    node.detach()
    print(url)
    if node.password is not None and node.ca_file is not None:
        secret = work / "elastic-password"
        secret.touch(mode=0o600)
        secret.write_text(node.password + "\n")
        print(f"ca_certs: {node.ca_file}")
        print(f"user: elastic  password: {node.password}  (also in {secret})")
    return 0


def _stop(args: argparse.Namespace) -> int:
    state = load_state(args.engine)
    if state is None:
        print(f"no {args.engine} node recorded in {state_path(args.engine)}")
        return 0
    terminate_group(state.pid)
    _cleanup(state)
    print(f"stopped {args.engine} node (pid {state.pid})")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _running(args.engine)
    if state is None:
        print(f"{args.engine}: not running (no node recorded in {state_path(args.engine)})")
        return 1
    try:
        health = get_json(
            f"{state.url}/_cluster/health", timeout=10, **_credentials(Path(state.work_dir))
        ).get("status", "unknown")
    except NodeError as exc:
        health = f"not answering ({exc})"
    print(f"{args.engine} {state.version}: {state.url} pid {state.pid} status {health}")
    return 0


def _credentials(work: Path) -> dict[str, Any]:
    """CA file and `elastic` login of a node started with --security (nothing otherwise)."""
    secret = work / "elastic-password"
    if not secret.is_file():
        return {}
    token = base64.b64encode(f"elastic:{secret.read_text().strip()}".encode()).decode()
    return {"ca_file": work / "config" / "certs" / "ca.crt", "authorization": f"Basic {token}"}
