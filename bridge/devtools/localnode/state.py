"""Where the CLI remembers detached nodes: one JSON file and one work dir per engine."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bridge.devtools.localnode.distribution import engines_cache_dir
from bridge.errors import NodeError


@dataclass(frozen=True)
class NodeState:
    engine: str
    version: str
    pid: int
    url: str
    work_dir: str


def nodes_dir() -> Path:
    """`RERANK_BRIDGE_NODES_DIR`, else `nodes/` inside the engines cache."""
    override = os.environ.get("RERANK_BRIDGE_NODES_DIR")
    return Path(override) if override else engines_cache_dir() / "nodes"


def state_path(engine: str) -> Path:
    return nodes_dir() / f"{engine}.json"


def work_dir_for(engine: str) -> Path:
    return nodes_dir() / engine


def save_state(state: NodeState) -> None:
    path = state_path(state.engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def load_state(engine: str) -> NodeState | None:
    path = state_path(engine)
    try:
        raw = json.loads(path.read_text())
        return NodeState(
            engine=str(raw["engine"]),
            version=str(raw["version"]),
            pid=int(raw["pid"]),
            url=str(raw["url"]),
            work_dir=str(raw["work_dir"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NodeError(f"unreadable node state file {path}: {exc}; delete it") from None


def clear_state(engine: str) -> None:
    state_path(engine).unlink(missing_ok=True)
