"""A command whose extra is not installed says which extra to install, without a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
