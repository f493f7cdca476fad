"""A command whose extra is not installed says which extra to install, without a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Runs the CLI in a child interpreter where the proxy's server package cannot be imported.
_BLOCKED_CLI = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "uvicorn":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from bridge.cli import main
    sys.exit(main(["serve", "--upstream", "http://127.0.0.1:9"]))
    """
)


def test_serve_without_the_proxy_extra_names_the_extra_to_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI], capture_output=True, text=True, timeout=120
    )
    assert (
        result.returncode,
        "Traceback" in result.stderr,
        "rerank-bridge[proxy]" in result.stderr,
    ) == (
        2,
        False,
        True,
    )


_TRAIN_WITHOUT_TORCH = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from bridge.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_train_without_the_train_extra_names_the_extra_and_writes_nothing(tmp_path: Path) -> None:
    from tests.support.build_models import minilm_checkpoint_dir

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "drill", "passage": "cordless drill", "label": 1}\n', "utf-8")
    out = tmp_path / "out"
    argv = ["train", "--data", str(data), "--base", str(minilm_checkpoint_dir()), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", _TRAIN_WITHOUT_TORCH, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, "Traceback" in result.stderr) == (2, False)
    assert "pip install 'rerank-bridge[train]'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl"]
