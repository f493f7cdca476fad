"""`python -m build` makes an sdist and a wheel; the wheel installs with each extra and works.

Each extra gets its own fresh venv (uv, with its cache, so this takes seconds per extra once the
cache is warm) and a smoke command that uses what the extra adds: a real rerank with a built model,
a reranked search on a live node, the proxy answering a reranked search, and so on. The core venv
must not have any extra's packages, so `pip install rerank-bridge` stays light.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=str(DEV_BIN)) or shutil.which("uv")
EXTRAS = (
    "core",
    "elasticsearch",
    "opensearch",
    "proxy",
    "convert",
    "eval",
    "langchain",
    "llamaindex",
    "node",
    "train",
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

NODE_CERTS = """
import tempfile
from pathlib import Path
from bridge.devtools.localnode.certs import write_node_certificates
certs = write_node_certificates(Path(tempfile.mkdtemp()))
assert certs.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
"""

RERANK_NANO = """
import sys
from bridge import Ranker, RerankRequest
ranker = Ranker(model_name=sys.argv[1])
out = ranker.rerank(RerankRequest(query="cordless drill", passages=[
    {"id": 1, "text": "garden hose"}, {"id": 2, "text": "DEWALT cordless drill kit"}]))
assert sorted(p["id"] for p in out) == [1, 2] and all(isinstance(p["score"], float) for p in out)
print("reranked", [p["id"] for p in out])
"""

SEARCH = """
import os, sys
from bridge import RerankingSearch
from bridge.devtools.sample import load_sample
if sys.argv[1] == "elasticsearch":
    from elasticsearch import Elasticsearch as Client
else:
    from opensearchpy import OpenSearch as Client
client = Client(os.environ["ENGINE_URL"])
index = load_sample(client)
search = RerankingSearch(client, defaults={"model": sys.argv[2], "on_failure": "error",
                                           "explain": True})
resp = search.search(index=index, body={"query": {"match": {"title": "cordless drill"}}},
                     rerank=True)
assert resp["rerank"]["status"] == "ok", resp["rerank"]
print(resp["hits"]["hits"][0]["_source"]["title"])
"""

LANGCHAIN = """
import sys
from langchain_core.documents import Document
from bridge.integrations.langchain import BridgeRerank
docs = [Document(page_content="garden hose"), Document(page_content="cordless drill kit")]
out = BridgeRerank(model=sys.argv[1], top_n=2).compress_documents(docs, "cordless drill")
assert len(out) == 2 and "relevance_score" in out[0].metadata
"""

LLAMAINDEX = """
import sys
from llama_index.core.schema import NodeWithScore, TextNode, QueryBundle
from bridge.integrations.llamaindex import BridgeRerank
nodes = [NodeWithScore(node=TextNode(text=t)) for t in ("garden hose", "cordless drill kit")]
out = BridgeRerank(model=sys.argv[1], top_n=2).postprocess_nodes(
    nodes, query_bundle=QueryBundle("cordless drill"))
assert len(out) == 2 and all(isinstance(n.score, float) for n in out)
"""

# (pyyaml is not listed: tokenizers pulls it in through huggingface_hub)
NOT_IN_CORE = (
    "elasticsearch",
    "opensearchpy",
    "starlette",
    "uvicorn",
    "onnx",
    "langchain_core",
    "torch",
    "transformers",
)


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out)]
    if UV:
        command[3:3] = ["--installer", "uv"]
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("rerank_bridge-*.whl")
    return wheel


def _venv_with(extra: str, wheel: Path, where: Path) -> Path:
    assert UV, "uv is needed to build the fresh venvs (make setup installs it)"
    venv = where / f"venv-{extra}"
    subprocess.run(
        [UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120
    )
    spec = str(wheel) if extra == "core" else f"rerank-bridge[{extra}] @ {wheel.as_uri()}"
    result = subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), spec],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"install of {spec} failed:\n{result.stderr[-3000:]}"
    return venv


def _run(venv: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=venv.parent,  # not the checkout: only the installed package can be imported
        env={**os.environ, **(env or {}), "PYTHONPATH": ""},
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


def test_build_makes_sdist_and_wheel(dist_dir: Path) -> None:
    names = sorted(path.name for path in dist_dir.iterdir())
    assert names == ["rerank_bridge-0.1.0-py3-none-any.whl", "rerank_bridge-0.1.0.tar.gz"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proxy_smoke(venv: Path, es_url: str, flashrank_cache: Path) -> None:
    """The default model (a FlashRank name) from the built stand-ins: tests have no network."""
    port = _free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "rerank-bridge"), "serve", "--upstream", es_url, "--port", str(port)],
        cwd=venv.parent,
        env={
            **os.environ,
            "PYTHONPATH": "",
            "RERANK_BRIDGE_CACHE": str(flashrank_cache),
            "RERANK_BRIDGE_OFFLINE": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_bridge/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"serve exited {server.returncode}"
            assert time.monotonic() < deadline, "proxy not healthy within 90 s"
            time.sleep(0.5)
        body = b'{"query": {"match": {"title": "drill"}}, "rerank": {"window_size": 10}}'
        request = urllib.request.Request(
            f"{base}/rerank-bridge-sample/_search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.headers["X-Rerank-Status"] == "reranked", dict(answer.headers)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("extra", EXTRAS)
def test_wheel_installs_with_extra_and_runs(
    extra: str,
    dist_dir: Path,
    tmp_path: Path,
    nano_cross_encoder_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    venv = _venv_with(extra, _wheel(dist_dir), tmp_path)
    model = str(nano_cross_encoder_dir)
    _run(venv, "rerank-bridge", "--help")
    if extra == "core":
        _run(venv, "python", "-c", RERANK_NANO, model)
        _run(venv, "rerank-bridge", "models", "info", model)
        present = _run(
            venv,
            "python",
            "-c",
            "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])",
            *NOT_IN_CORE,
        )
        assert present.strip() == "[]", f"the core install pulled in {present.strip()}"
    elif extra in ("elasticsearch", "opensearch"):
        url = request.getfixturevalue("es_url" if extra == "elasticsearch" else "os_url")
        _run(venv, "python", "-c", SEARCH, extra, model, env={"ENGINE_URL": url})
    elif extra == "proxy":
        es_url = request.getfixturevalue("es_url")
        from elasticsearch import Elasticsearch

        from bridge.devtools.sample import load_sample

        with Elasticsearch(es_url) as client:
            load_sample(client)
        _proxy_smoke(venv, es_url, request.getfixturevalue("flashrank_cache_dir"))
    elif extra == "convert":
        _run(venv, "rerank-bridge", "models", "convert", "--help")
        _run(venv, "python", "-c", "import onnx, safetensors, bridge.models.convert")
    elif extra == "eval":
        _run(venv, "rerank-bridge", "eval", "--help")
        _run(venv, "python", "-c", "import ir_measures, rich, matplotlib, bridge.eval")
    elif extra == "langchain":
        _run(venv, "python", "-c", LANGCHAIN, model)
    elif extra == "llamaindex":
        _run(venv, "python", "-c", LLAMAINDEX, model)
    elif extra == "node":
        _run(venv, "rerank-bridge", "node", "start", "--help")
        _run(venv, "python", "-c", NODE_CERTS)
    elif extra == "train":
        _run(venv, "rerank-bridge", "train", "--help")
        _run(venv, "python", "-c", "import torch, transformers, bridge.training.torch_model")
