"""The framework extras stay optional: without them, ``bridge`` imports and reranks.

Each test runs a fresh interpreter in which a ``sys.meta_path`` finder makes langchain and
llama_index unimportable, as on a ``pip install rerank-bridge`` without extras.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

_BLOCKER = """
import sys

class _Blocker:
    blocked = ("langchain", "langchain_core", "langchain_community", "langchain_classic",
               "langchain_text_splitters", "llama_index")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""


def _run(body: str, *args: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", _BLOCKER + body, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_bridge_ranker_reranks_without_framework_extras(nano_cross_encoder_dir: Path) -> None:
    result = _run(
        """
import json, sys
import bridge
ranker = bridge.Ranker(model_name=sys.argv[1])
ranked = ranker.rerank(bridge.RerankRequest(
    query="cordless drill",
    passages=[{"id": 1, "text": "a cordless drill"}, {"id": 2, "text": "a garden hose"}],
))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("langchain_core", "llama_index"))
print(json.dumps({"ids": sorted(p["id"] for p in ranked), "framework_modules": loaded}))
""",
        str(nano_cross_encoder_dir),
    )
    assert result == {"ids": [1, 2], "framework_modules": []}


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("bridge.integrations.langchain", "rerank-bridge[langchain]"),
        ("bridge.integrations.llamaindex", "rerank-bridge[llamaindex]"),
    ],
)
def test_integration_import_names_the_missing_extra(module: str, extra: str) -> None:
    result = _run(
        """
import importlib, json, sys
try:
    importlib.import_module(sys.argv[1])
except ImportError as exc:
    print(json.dumps({"raised": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"raised": None, "message": ""}))
""",
        module,
    )
    assert result["raised"] == "ImportError"
    assert f"pip install '{extra}'" in str(result["message"])
