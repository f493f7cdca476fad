"""Fixtures for models the project builds (bi-encoder, FlashRank-architecture cross-encoders).

Models live in ``<repo>/.cache/models`` (``RERANK_BRIDGE_TEST_MODELS`` overrides) and are built
on first use by :mod:`tests.support.build_models`, the same code as ``make models``; each fixture
builds only what it needs. A model that cannot be built fails the test: these models are part of the
project, so their absence is a bug, not an environment limitation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.build_models import (
    BI_ENCODER,
    FLASHRANK_DIR,
    NANO,
    SMALL,
    build_all,
)

MODELS_ENV = "RERANK_BRIDGE_TEST_MODELS"
REPO_ROOT = Path(__file__).resolve().parents[2]


def models_location() -> Path:
    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else REPO_ROOT / ".cache" / "models"


def _ensure(only: Sequence[str]) -> Path:
    location = models_location()
    try:
        build_all(location, only)
    except (Exception, SystemExit) as exc:  # any failure to build is a test failure
        pytest.fail(f"cannot build test models {list(only)} under {location}: {exc}")
    return location


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The folder holding every built test model (all built if missing)."""
    return _ensure(("bi", "nano", "small"))


@pytest.fixture(scope="session")
def bi_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as ONNX (fp32, ``sentence_embedding`` output) with its tokenizer."""
    return _ensure(("bi",)) / BI_ENCODER


@pytest.fixture(scope="session")
def nano_cross_encoder_dir() -> Path:
    """TinyBERT-L2-architecture cross-encoder, int8, seeded weights (speed and plumbing only)."""
    return _ensure(("nano",)) / NANO


@pytest.fixture(scope="session")
def small_cross_encoder_dir() -> Path:
    """MiniLM-L12-architecture cross-encoder, int8, MiniLM encoder layers + seeded head."""
    return _ensure(("small",)) / SMALL


@pytest.fixture(scope="session")
def flashrank_cache_dir() -> Path:
    """A FlashRank ``cache_dir`` holding ms-marco-TinyBERT-L-2-v2 and ms-marco-MiniLM-L-12-v2."""
    return _ensure(("nano", "small")) / FLASHRANK_DIR
