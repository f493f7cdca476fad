"""Which model made an index's stored vectors: a fingerprint of the model's files, recorded in the
index mapping's ``_meta`` by ``rerank-bridge embed`` and compared by a phase that reads them.

The fingerprint hashes the bytes of the ONNX graph and the tokenizer plus the pooling, so a copy of
the same model elsewhere matches and a retrained or re-exported one does not (unlike the score
cache's ``model_identity``, which also keys on the path and modification time).

The record also holds the token limit (``max_length``) the texts were cut at: a long text embedded
at another limit gives another vector, so a phase compares (fingerprint, its effective limit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bridge.models.local import ModelFiles
from bridge.scoring.loader import requested_max_length
from bridge.scoring.tokenize import capped_max_length

# index mapping `_meta` key: {vector field: {"model", "fingerprint", "dims", "from_field",
# "max_length"}}
META_KEY = "rerank_bridge_vectors"


def model_fingerprint(files: ModelFiles) -> str:
    """``sha256:<hex>`` over the ONNX file, the tokenizer file and the pooling."""
    return _fingerprint(files.onnx_path, files.tokenizer_path, files.pooling or "mean")


def effective_max_length(files: ModelFiles, requested: int | None = None) -> int:
    """The token limit a scorer of ``files`` opened with ``max_length=requested`` cuts texts at
    (``None``: the model's default): the loader's rule, then the tokenizer's cap."""
    return capped_max_length(files.tokenizer_path, requested_max_length(files, requested))


@lru_cache(maxsize=32)
def _fingerprint(onnx_path: Path, tokenizer_path: Path, pooling: str) -> str:
    digest = hashlib.sha256()
    for path in (onnx_path, tokenizer_path):
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    digest.update(pooling.encode())
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class VectorsMeta:
    """What ``_meta`` says about one stored vector field."""

    model: str
    fingerprint: str
    dims: int
    from_field: str
    # the token limit the texts were cut at; None: a record written before the limit was
    # recorded (rerank-bridge embed then always used the model's default), read as that default
    max_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "dims": self.dims,
            "from_field": self.from_field,
        }
        if self.max_length is not None:
            out["max_length"] = self.max_length
        return out

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], field: str) -> VectorsMeta | None:
        """The entry for ``field`` in one index's mapping (``{"_meta": ..., "properties": ...}``),
        or ``None`` when the index records nothing for it."""
        meta = mapping.get("_meta")
        entries = meta.get(META_KEY) if isinstance(meta, Mapping) else None
        entry = entries.get(field) if isinstance(entries, Mapping) else None
        if not isinstance(entry, Mapping):
            return None
        length = entry.get("max_length")
        try:
            return cls(
                model=str(entry["model"]),
                fingerprint=str(entry["fingerprint"]),
                dims=int(entry["dims"]),
                from_field=str(entry.get("from_field", "")),
                max_length=None if length is None else int(length),
            )
        except (KeyError, TypeError, ValueError):
            return None


__all__ = ["META_KEY", "VectorsMeta", "effective_max_length", "model_fingerprint"]
