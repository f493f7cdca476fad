"""The one fixture that finds ../shared (datasets and the trained cross-encoder).

CI has ../shared beside the clone; a user's clone does not. Tests that need it skip with the reason.
`RERANK_BRIDGE_SHARED` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_location() -> Path:
    override = os.environ.get("RERANK_BRIDGE_SHARED")
    return Path(override) if override else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    location = shared_location()
    if not (location / "data").is_dir():
        pytest.skip(
            f"shared data not found at {location} (set RERANK_BRIDGE_SHARED to the folder holding "
            "data/ and models/)"
        )
    return location


@pytest.fixture(scope="session")
def homedepot_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "homedepot"


@pytest.fixture(scope="session")
def msmarco_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "msmarco-dl19"


@pytest.fixture(scope="session")
def cranfield_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "cranfield"


@pytest.fixture(scope="session")
def homedepot_cross_encoder_dir(shared_dir: Path) -> Path:
    location = shared_dir / "models" / "homedepot-minilm-l6-ce"
    if not (location / "model.onnx").is_file():
        pytest.skip(f"trained cross-encoder not found at {location}")
    return location
