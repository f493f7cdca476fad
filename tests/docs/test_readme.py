"""Every fenced code block in README.md runs here, one test per block, in README order.

The rule (also in the README's "About the examples" and /tmp/ctx/README-CONVENTION.md):

- Info strings: `bash` (run with `bash -euo pipefail`); `python` (run as a script with the dev
  venv's python); `json` (parsed; a `rerank` section is validated by bridge.config; a search
  body is sent through RerankingSearch to the sample index on a live node); `yaml` / `toml`
  (loaded by the proxy's own settings loader). Any other info string, or none, fails the
  collection: nothing is exempt.
- Blocks run in a sandbox: a copy of the checkout's files (tracked and untracked-not-ignored) with
  `.cache/models` linked in, cwd = its root, in README order, so a block may use a file an earlier
  one wrote. Environment: `ES_URL` / `OS_URL` (live nodes from tests/support/engines.py),
  `RERANK_BRIDGE_SHARED`, `RERANK_BRIDGE_CACHE` = the built FlashRank stand-ins with
  `RERANK_BRIDGE_OFFLINE=1` (tests have no network; the stand-ins have the real architectures, not
  the trained weights), `BRIDGE_PORT` = a free port.
- `<!-- readme-test: ... -->` on the line before a fence: `fresh-clone` (its own new sandbox, no
  `.venv`, the dev venv off PATH: the install lines really run; nodes it starts are stopped after),
  `needs=shared` (skips with the reason when ../shared is absent), `timeout=S`, `env:NAME=VALUE`.
  There is no skip: what cannot run on a test machine is not a fenced block.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.readme_blocks import Block, parse_blocks
from tests.support.shared import shared_location

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
DEV_BIN = Path(sys.executable).parent
SEARCH_KEYS = {"query", "knn", "retriever", "rerank"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def make_sandbox(target: Path, *, with_models: bool) -> Path:
    """A copy of the checkout as a user would have it after `git clone` (+ `make models`)."""
    root = target / "rerank-bridge"
    for name in _checkout_files():
        destination = root / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination)
    if with_models:
        (root / ".cache").mkdir(exist_ok=True)
        (root / ".cache" / "models").symlink_to(REPO_ROOT / ".cache" / "models")
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def block_env(es_url: str, os_url: str, models_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ES_URL=es_url,
        OS_URL=os_url,
        RERANK_BRIDGE_SHARED=str(shared_location()),
        RERANK_BRIDGE_CACHE=str(models_dir / "flashrank"),
        RERANK_BRIDGE_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env["PATH"] = f"{DEV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def sample_index(es_url: str, os_url: str) -> str:
    """The state the README's "5 minutes" block leaves: the sample loaded in both nodes."""
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    from bridge.devtools.sample import load_sample

    with OpenSearch(os_url) as os_client:
        load_sample(os_client)
    with Elasticsearch(es_url) as client:
        return load_sample(client)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, sample_index: str) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("readme"), with_models=True)


def _without_dev_venv(env: dict[str, str]) -> dict[str, str]:
    fresh = dict(env)
    fresh.pop("VIRTUAL_ENV", None)
    fresh["PATH"] = os.pathsep.join(
        entry
        for entry in env["PATH"].split(os.pathsep)
        if entry and not Path(entry).resolve().is_relative_to(REPO_ROOT)
    )
    return fresh


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    suffix = ".py" if block.kind == "python" else ".sh"
    script = cwd / f".readme-block-L{block.line}{suffix}"
    script.write_text(block.text, encoding="utf-8")
    command = (
        [str(DEV_BIN / "python"), str(script)]
        if block.kind == "python"
        else ["bash", "-euo", "pipefail", str(script)]
    )
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, **block.env, "BRIDGE_PORT": str(_free_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=block.timeout_s)
    except subprocess.TimeoutExpired:
        # SIGTERM first, so a block's `finally`/`with` blocks (e.g. a node it started) can clean up
        _signal_group(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(
            f"README line {block.line} ({block.heading}) did not finish in {block.timeout_s:.0f}s;"
            f" output:\n{output[-4000:]}",
            pytrace=False,
        )
    finally:
        _signal_group(process.pid, signal.SIGTERM)  # whatever the block left in the background
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _stop_sandbox_nodes(root: Path, env: dict[str, str]) -> None:
    cli = root / ".venv" / "bin" / "rerank-bridge"
    if not cli.exists():
        return
    for engine in ("elasticsearch", "opensearch"):
        subprocess.run(
            [str(cli), "node", "stop", "--engine", engine],
            cwd=root,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def fresh_clone(tmp_path: Path, block_env: dict[str, str]) -> Iterator[tuple[Path, dict[str, str]]]:
    root = make_sandbox(tmp_path, with_models=False)
    env = _without_dev_venv(block_env)
    try:
        yield root, env
    finally:
        _stop_sandbox_nodes(root, env)


def _check_json(block: Block, es_url: str, sample: str | None) -> None:
    from elasticsearch import Elasticsearch

    from bridge import RerankConfig, RerankingSearch

    value: Any = json.loads(block.text)
    if not isinstance(value, dict):
        return
    if "rerank" in value:
        RerankConfig.from_value(value["rerank"])
    if SEARCH_KEYS & set(value) and sample is not None:
        body = json.loads(block.text)
        if isinstance(body.get("rerank"), dict):
            body["rerank"].setdefault("on_failure", "error")
        with Elasticsearch(es_url) as client:
            RerankingSearch(client).search(index=sample, body=body)


def _check_settings(block: Block, tmp_path: Path) -> None:
    from bridge.proxy.settings import load_settings

    path = tmp_path / f"settings.{block.kind}"
    path.write_text(block.text, encoding="utf-8")
    load_settings(path)


def _fail(block: Block, result: subprocess.CompletedProcess[str]) -> None:
    pytest.fail(
        f"README line {block.line} ({block.heading}) exited {result.returncode}; output:\n"
        f"{result.stdout[-6000:]}",
        pytrace=False,
    )


def test_readme_has_blocks() -> None:
    assert BLOCKS, "README.md has no code blocks: the parser or the README is broken"


@pytest.mark.parametrize(
    "block",
    [
        # pytest-timeout's own limit above the block's, so the block's timeout reports first
        pytest.param(block, id=block.test_id, marks=pytest.mark.timeout(block.timeout_s + 180))
        for block in BLOCKS
    ],
)
def test_readme_block(
    block: Block,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if block.needs_shared and not (shared_location() / "data").is_dir():
        pytest.skip(f"needs ../shared (not found at {shared_location()}; RERANK_BRIDGE_SHARED)")
    env: dict[str, str] = request.getfixturevalue("block_env")
    if block.kind in ("yaml", "toml"):
        _check_settings(block, tmp_path)
        return
    if block.kind == "json":
        for name in ("RERANK_BRIDGE_CACHE", "RERANK_BRIDGE_OFFLINE"):
            monkeypatch.setenv(name, env[name])
        _check_json(block, env["ES_URL"], request.getfixturevalue("sample_index"))
        return
    if block.fresh_clone:
        root, fresh_env = request.getfixturevalue("fresh_clone")
        result = run_block(block, root, fresh_env)
    else:
        result = run_block(block, request.getfixturevalue("sandbox"), env)
    if result.returncode != 0:
        _fail(block, result)
