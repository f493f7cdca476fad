"""Both engines refuse to run as root: as root, run nodes as a dedicated system user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import NodeError
from bridge.files import file_lock

DEFAULT_NODE_USER = "rerank-bridge"


@dataclass(frozen=True)
class NodeUser:
    name: str
    uid: int
    gid: int


def node_user() -> NodeUser | None:
    """None unless root (the node runs as the caller); else the user to run it as, made once."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("RERANK_BRIDGE_NODE_USER", DEFAULT_NODE_USER)
    with file_lock(Path("/tmp") / ".rerank-bridge-useradd.lock"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            _create(name)
            entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise NodeError(f"node user {name!r} is root; the engines refuse to run as root")
    return NodeUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def chown_tree(path: Path, user: NodeUser | None) -> None:
    if user is None:
        return
    os.chown(path, user.uid, user.gid)
    for directory, subdirs, files in os.walk(path):
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)


def _create(name: str) -> None:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    command = [useradd, "--system", "--user-group", "--no-create-home"]
    command += ["--shell", "/usr/sbin/nologin", name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NodeError(f"could not create node user {name!r}: {done.stderr.strip()}")
