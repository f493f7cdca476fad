"""Local model folders `rerank-bridge models list` knows about, with their kind and size.

Where it looks, in order (each folder's direct subfolders that hold a usable model):
1. `RERANK_BRIDGE_MODELS`: folders separated by the path separator (`:`), e.g. your own models;
2. the model cache (`RERANK_BRIDGE_CACHE`, ...), for models placed there by hand or converted
   (FlashRank's names there are listed in the names table instead);
3. `.cache/models` of the project in the working directory: the test models `make models` builds;
4. `models/` of the shared folder (`RERANK_BRIDGE_SHARED`, else `../shared` beside the project),
   e.g. the trained cross-encoder `make demo` uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import BridgeError
from bridge.models.cache_dir import default_cache_dir
from bridge.models.registry import known_model_names
from bridge.models.resolver import resolve_model

MODELS_ENV = "RERANK_BRIDGE_MODELS"
SHARED_ENV = "RERANK_BRIDGE_SHARED"
PROJECT_MARKERS = (".git", "pyproject.toml")


@dataclass(frozen=True)
class LocalModel:
    path: Path
    kind: str  # "cross" or "bi"
    size_bytes: int
    source: str  # which of the places above found it


def _project_root() -> Path:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return here


def search_roots(cache_dir: Path | None = None) -> list[tuple[str, Path]]:
    """(source label, folder) pairs to look in, in order; missing folders are left out."""
    roots = [
        (MODELS_ENV, Path(entry))
        for entry in os.environ.get(MODELS_ENV, "").split(os.pathsep)
        if entry
    ]
    roots.append(("cache", cache_dir or default_cache_dir()))
    project = _project_root()
    roots.append(("make models", project / ".cache" / "models"))
    shared = os.environ.get(SHARED_ENV)
    roots.append(("shared", (Path(shared) if shared else project.parent / "shared") / "models"))
    return [(label, folder) for label, folder in roots if folder.is_dir()]


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def find_local_models(cache_dir: Path | None = None) -> list[LocalModel]:
    """Every model folder under the search roots, each listed once (by resolved path)."""
    known = set(known_model_names())
    seen: set[Path] = set()
    found: list[LocalModel] = []
    for label, root in search_roots(cache_dir):
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if label == "cache" and folder.name in known:
                continue
            resolved = folder.resolve()
            if resolved in seen:
                continue
            try:
                files = resolve_model(folder, download=False, progress=False)
            except BridgeError:
                continue  # not a model folder (e.g. a nested FlashRank cache)
            seen.add(resolved)
            found.append(LocalModel(folder, files.kind, folder_size(folder), label))
    return found
