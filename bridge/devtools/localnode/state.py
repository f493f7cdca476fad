"""Where the CLI remembers detached nodes: one JSON file and one work dir per engine and project.

Nodes belong to the project they were started from (the nearest folder above the working
directory holding `.git` or `pyproject.toml`, else the working directory itself), so
`rerank-bridge node status|stop` in one clone never sees or stops another clone's node.
"""

from __future__ import annotations

import hashlib
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


PROJECT_MARKERS = (".git", "pyproject.toml")


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) with a marker."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return here


def project_key(root: Path) -> str:
    """A readable, collision-free folder name for `root`: its name plus a hash of its path."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return f"{root.name or 'root'}-{digest}"


def nodes_dir() -> Path:
    """`RERANK_BRIDGE_NODES_DIR`, else `nodes/<project key>/` inside the engines cache."""
    override = os.environ.get("RERANK_BRIDGE_NODES_DIR")
    if override:
        return Path(override)
    return engines_cache_dir() / "nodes" / project_key(project_root())


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
