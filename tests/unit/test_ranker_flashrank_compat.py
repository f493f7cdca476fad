"""The seed's FlashRank examples run against bridge with only the import line changed.

The hub is unreachable here, so ``Ranker()`` finds the default model in the project-built
FlashRank-layout cache through ``RERANK_BRIDGE_CACHE`` (the same file FlashRank itself loads).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from flashrank import Ranker as FlashRanker
from flashrank import RerankRequest as FlashRequest

from tests.support.shared import shared_location

SEED = shared_location() / "seed" / "flashrank-overview.md"
NANO = "ms-marco-TinyBERT-L-2-v2"


def _snippet(heading: str) -> str:
    if not SEED.is_file():
        pytest.skip(f"seed document not found at {SEED}")
    text = SEED.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def _run_with_bridge(code: str) -> tuple[str, dict[str, object]]:
    ported = code.replace("from flashrank import", "from bridge import")
    assert ported != code, "the snippet does not import flashrank"
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(ported, "<seed snippet>", "exec"), namespace)
    return out.getvalue(), namespace


@pytest.fixture
def default_cache(flashrank_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RERANK_BRIDGE_CACHE", str(flashrank_cache_dir))
    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    return flashrank_cache_dir


def test_quick_start_standalone_usage_runs_unchanged(default_cache: Path) -> None:
    output, namespace = _run_with_bridge(_snippet("### Standalone Usage"))
    passages = namespace["passages"]
    assert isinstance(passages, list)
    assert len(output.strip().splitlines()) == len(passages)


def test_basic_usage_runs_unchanged(default_cache: Path) -> None:
    output, _ = _run_with_bridge(_snippet("### Basic Usage"))
    assert re.findall(r"^Score: \d\.\d{4} \| ID: \d", output, re.MULTILINE)


def test_basic_usage_scores_match_flashrank_on_the_same_file(default_cache: Path) -> None:
    _, namespace = _run_with_bridge(_snippet("### Basic Usage"))
    results = namespace["results"]
    assert isinstance(results, list)
    flash = FlashRanker(model_name=NANO, cache_dir=str(default_cache))
    passages = namespace["passages"]
    assert isinstance(passages, list)
    expected = {
        p["id"]: float(p["score"])
        for p in flash.rerank(
            FlashRequest(query=namespace["query"], passages=[dict(p) for p in passages])
        )  # type: ignore[arg-type]
    }
    assert {r["id"]: r["score"] for r in results} == pytest.approx(expected, abs=1e-5)
