"""Does `make demo` have its data? Standard library only: `make demo` runs this file with the
system python before it creates the venv or builds models, so a clone without `../shared` is
told what is missing within a second instead of after minutes of installing.

    python3 bridge/devtools/demo_data.py   # exit 0 when the data is there, 2 (and why) when not
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SHARED_ENV = "RERANK_BRIDGE_SHARED"
REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("data/homedepot/products.jsonl", "data/homedepot/judgments.tsv")
OPTIONAL = {
    "models/homedepot-minilm-l6-ce/model.onnx": "the trained cross-encoder the demo reranks with "
    "(without it: FlashRank's ms-marco-TinyBERT-L-2-v2, downloaded once)",
    "data/msmarco-dl19/corpus.jsonl": "the TREC-DL19 eval at the end (skipped without it)",
}


def shared_location() -> Path:
    override = os.environ.get(SHARED_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared"


def missing_required(shared: Path) -> list[str]:
    return [name for name in REQUIRED if not (shared / name).is_file()]


def problem(shared: Path | None = None) -> str | None:
    """None when the demo can run, else a message saying what it needs and how to provide it."""
    location = shared if shared is not None else shared_location()
    missing = missing_required(location)
    if not missing:
        return None
    source = f"${SHARED_ENV}" if os.environ.get(SHARED_ENV) else "../shared, beside this clone"
    lines = [
        f"make demo needs the Home Depot product data; not found in {location} ({source}).",
        "Missing: " + ", ".join(missing),
        f"Provide the folder holding data/ (and models/) and point {SHARED_ENV} at it, e.g.",
        f"  {SHARED_ENV}=/path/to/shared make demo",
        "or place it at ../shared next to the clone. Used when present:",
        *(f"  {name}: {why}" for name, why in OPTIONAL.items()),
        "Without the data, 'Your own cluster in 5 minutes' in README.md needs nothing but a JDK.",
    ]
    return "\n".join(lines)


def main() -> int:
    message = problem()
    if message is None:
        print(f"demo data: found in {shared_location()}")
        return 0
    print(message, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
