"""LocalNode and `rerank-bridge node` on the Maven Central integ-test zips (always, whatever the
engine fixtures use): start failures carry the log tail, the CLI leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.devtools.localnode import LocalNode
from bridge.devtools.localnode.process import get_json, group_alive
from bridge.errors import NodeError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_node_with_unknown_setting_fails_with_its_log_tail() -> None:
    node = LocalNode("elasticsearch", settings={"rerank.bridge.no_such_setting": "x"})
    with pytest.raises(NodeError, match=r"(?s)failed to start.*rerank\.bridge\.no_such_setting"):
        node.start()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "node", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        check=False,
    )


def pid_gone(pid: int, timeout: float = 30.0) -> bool:
    """True once /proc has no entry for `pid` (an orphan's zombie is reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def cli_env() -> Iterator[dict[str, str]]:
    # Not tmp_path: pytest's base dir is private to root, and the node user must enter it.
    nodes = Path(tempfile.mkdtemp(prefix="rerank-bridge-cli-test-"))
    os.chmod(nodes, 0o755)
    yield {**os.environ, "RERANK_BRIDGE_NODES_DIR": str(nodes)}
    shutil.rmtree(nodes, ignore_errors=True)


@pytest.fixture(scope="module")
def cli_node(cli_env: dict[str, str]) -> Iterator[tuple[str, int]]:
    started = run_cli("start", "--engine", "elasticsearch", env=cli_env)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    state = Path(cli_env["RERANK_BRIDGE_NODES_DIR"]) / "elasticsearch.json"
    pid = int(json.loads(state.read_text())["pid"])
    yield url, pid
    run_cli("stop", "--engine", "elasticsearch", env=cli_env)


def test_cli_start_prints_the_url_of_a_healthy_node(cli_node: tuple[str, int]) -> None:
    url, _pid = cli_node
    assert get_json(f"{url}/_cluster/health")["status"] in ("green", "yellow")


def test_cli_status_reports_the_running_node(
    cli_node: tuple[str, int], cli_env: dict[str, str]
) -> None:
    url, _pid = cli_node
    status = run_cli("status", "--engine", "elasticsearch", env=cli_env)
    assert url in status.stdout


def test_cli_stop_leaves_no_process(cli_node: tuple[str, int], cli_env: dict[str, str]) -> None:
    _url, pid = cli_node
    stopped = run_cli("stop", "--engine", "elasticsearch", env=cli_env)
    assert stopped.returncode == 0, stopped.stderr
    assert not group_alive(pid)
    assert pid_gone(pid)


INNER_TEST = """
def test_needs_elasticsearch(es_url):
    assert es_url
"""


def test_session_fixture_fails_the_run_with_the_node_log_tail(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RERANK_BRIDGE_TEST_ES_URL", "RERANK_BRIDGE_TEST_OS_URL")
    }
    env["RERANK_BRIDGE_TEST_NODE_SETTINGS"] = json.dumps({"rerank.bridge.bogus_setting": 1})
    plugins = ["tests.support.shared", "tests.support.models", "tests.support.engines"]
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
        + [arg for plugin in plugins for arg in ("-p", plugin)]
        + [str(tmp_path / "test_inner.py")],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    # 1 = tests failed (not skipped, not a crash); the message carries the node's own log line.
    outcome = (inner.returncode, "unknown setting [rerank.bridge.bogus_setting]" in inner.stdout)
    assert outcome == (1, True), inner.stdout
