"""Two clones on one machine each start, use and stop their own node without touching the other's.

Real nodes through the real CLI, run from two checkout folders with no RERANK_BRIDGE_NODES_DIR:
state is keyed by the project folder the command runs in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.devtools.localnode.process import group_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cli(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RERANK_BRIDGE_NODES_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "node", *args, "--engine", "elasticsearch"],
        cwd=clone,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def health(url: str) -> str:
    with urllib.request.urlopen(f"{url}/_cluster/health", timeout=10) as answer:
        return str(json.load(answer)["status"])


@pytest.fixture
def clones() -> Iterator[tuple[Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="rerank-bridge-clones-"))
    pair = []
    for name in ("one", "two"):
        root = base / name / "rerank-bridge"
        (root / ".git").mkdir(parents=True)
        pair.append(root)
    try:
        yield pair[0], pair[1]
    finally:
        for root in pair:
            cli(root, "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_each_clone_sees_and_stops_only_its_own_node(clones: tuple[Path, Path]) -> None:
    one, two = clones
    started = cli(one, "start")
    assert started.returncode == 0, started.stderr
    url_one = started.stdout.strip().splitlines()[-1]

    assert cli(two, "status").returncode == 1  # clone two has no node
    cli(two, "stop")  # must not stop clone one's node
    assert health(url_one) in ("green", "yellow")

    started_two = cli(two, "start")
    assert started_two.returncode == 0, started_two.stderr
    url_two = started_two.stdout.strip().splitlines()[-1]
    assert url_two != url_one
    status_one = cli(one, "status")
    assert url_one in status_one.stdout
    assert url_two not in status_one.stdout

    pid_one = int(status_one.stdout.split(" pid ")[1].split()[0])
    assert cli(one, "stop").returncode == 0
    assert not group_alive(pid_one)
    assert health(url_two) in ("green", "yellow")  # clone two's node is untouched
    assert cli(two, "stop").returncode == 0
    assert cli(two, "status").returncode == 1
