"""The FlashRank model names, their files and where they download from.

Names, file names and the zip layout follow FlashRank 0.2.10 (``flashrank/Config.py``): one zip per
model at ``<base>/<name>.zip`` holding a ``<name>/`` folder, so a FlashRank cache directory and ours
are interchangeable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bridge.config import DEFAULT_MODEL

DEFAULT_BASE_URL = "https://huggingface.co/prithivida/flashrank/resolve/main"
BASE_URL_ENV = "RERANK_BRIDGE_MODEL_URL"


@dataclass(frozen=True)
class KnownModel:
    """A downloadable model: its FlashRank name, ONNX file and what to expect of it."""

    name: str
    onnx_file: str
    size_class: str
    approx_size_mb: int
    description: str
    # Files every copy must hold; the download is rejected and the cache re-fetched without them.
    required_files: tuple[str, ...]
    # Optional integrity data; FlashRank publishes none, so both stay None unless pinned here.
    sha256: str | None = None
    zip_size: int | None = None


def _known(
    name: str, onnx_file: str, size_class: str, approx_size_mb: int, description: str
) -> KnownModel:
    return KnownModel(
        name=name,
        onnx_file=onnx_file,
        size_class=size_class,
        approx_size_mb=approx_size_mb,
        description=description,
        required_files=(onnx_file, "tokenizer.json", "config.json"),
    )


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        _known(
            "ms-marco-TinyBERT-L-2-v2",
            "flashrank-TinyBERT-L-2-v2.onnx",
            "nano",
            4,
            "TinyBERT 2 layers, MS MARCO cross-encoder (default, fastest)",
        ),
        _known(
            "ms-marco-MiniLM-L-12-v2",
            "flashrank-MiniLM-L-12-v2_Q.onnx",
            "small",
            34,
            "MiniLM 12 layers, MS MARCO cross-encoder, int8",
        ),
        _known(
            "rank-T5-flan",
            "flashrank-rankt5_Q.onnx",
            "medium",
            110,
            "RankT5 (Flan-T5 encoder), pointwise cross-encoder, int8",
        ),
        _known(
            "ms-marco-MultiBERT-L-12",
            "flashrank-MultiBERT-L12_Q.onnx",
            "large",
            150,
            "multilingual BERT 12 layers, MS MARCO cross-encoder, int8",
        ),
        _known(
            "ce-esci-MiniLM-L12-v2",
            "flashrank-ce-esci-MiniLM-L12-v2_Q.onnx",
            "small",
            34,
            "MiniLM 12 layers fine-tuned on Amazon ESCI (e-commerce), int8",
        ),
    )
}


# FlashRank names rerank-bridge deliberately does not run, with the reason shown to the user.
UNSUPPORTED_MODELS: dict[str, str] = {
    "rank_zephyr_7b_v1_full": "FlashRank's listwise LLM reranker (a GGUF file run by llama.cpp); "
    "rerank-bridge scores query-passage pairs with ONNX cross-encoders or bi-encoders only",
}


def known_model_names() -> list[str]:
    """The downloadable names, default first."""
    return [DEFAULT_MODEL, *sorted(n for n in KNOWN_MODELS if n != DEFAULT_MODEL)]


def model_url(name: str) -> str:
    """Download URL of a known model's zip; ``$RERANK_BRIDGE_MODEL_URL`` replaces the base.

    The override is either a base URL (``<base>/<name>.zip``) or a pattern containing ``{name}``.
    """
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if "{name}" in base:
        return base.replace("{name}", name)
    return f"{base.rstrip('/')}/{name}.zip"
