"""Saved optimised graphs: an optimised graph is never the source of another, and stale ones
beside a model (another ORT version, recipe or source file) stay bounded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bridge.models.local import OPTIMIZED_INFIX
from bridge.scoring import load_scorer
from bridge.scoring.session import (
    KEEP_BESIDE_MODEL,
    create_session,
    optimized_graph_path,
    prune_optimized,
    resolve_providers,
)


@pytest.fixture
def model_copy(nano_cross_encoder_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the nano model folder without any saved optimised graph."""
    folder = tmp_path / "nano"
    shutil.copytree(nano_cross_encoder_dir, folder, ignore=shutil.ignore_patterns("*.optimized-*"))
    return folder


def _source(folder: Path) -> Path:
    (source,) = (p for p in folder.glob("*.onnx") if OPTIMIZED_INFIX not in p.name)
    return source


def _graphs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.onnx")}


def test_an_optimised_graph_opens_as_it_is_and_is_never_optimised_again(
    model_copy: Path,
) -> None:
    source = _source(model_copy)
    create_session(source, model_config={})
    saved = optimized_graph_path(source, resolve_providers(None), None, tag="NonexNone")
    assert _graphs(model_copy) == {source.name, saved.name}
    session = create_session(saved, model_config={})  # e.g. a path given by hand, or a glob
    feed = {
        "input_ids": np.array([[101, 7592, 102]], dtype=np.int64),
        "attention_mask": np.ones((1, 3), dtype=np.int64),
        "token_type_ids": np.zeros((1, 3), dtype=np.int64),
    }
    assert session.run(None, feed)[0].shape[0] == 1
    assert _graphs(model_copy) == {source.name, saved.name}  # nothing *.optimized-*.optimized-*


def test_a_scorer_loaded_from_an_optimised_graph_path_scores_like_its_source(
    model_copy: Path,
) -> None:
    from_source = load_scorer(model_copy, max_length=64)
    (saved,) = (p for p in model_copy.glob("*.onnx") if OPTIMIZED_INFIX in p.name)
    from_saved = load_scorer(saved, max_length=64)
    passages = ["cordless drill kit", "garden hose 50 ft", "drill bits"]
    assert from_saved.score("drill", passages) == from_source.score("drill", passages)
    assert not [p for p in _graphs(model_copy) if p.count(OPTIMIZED_INFIX) > 1]


def test_stale_optimised_graphs_beside_a_model_stay_bounded(model_copy: Path) -> None:
    source = _source(model_copy)
    stale = [model_copy / f"{source.stem}{OPTIMIZED_INFIX}{i:016x}.onnx" for i in range(9)]
    nested = model_copy / f"{stale[0].stem}{OPTIMIZED_INFIX}{'f' * 16}.onnx"
    other_model = model_copy / f"other{OPTIMIZED_INFIX}{'e' * 16}.onnx"
    for age, path in enumerate([*stale, nested, other_model]):
        path.write_bytes(b"stale")
        os.utime(path, ns=(10**18 - age * 10**12, 10**18 - age * 10**12))  # stale[0] newest
    create_session(source, model_config={})
    saved = optimized_graph_path(source, resolve_providers(None), None, tag="NonexNone")
    kept = _graphs(model_copy)
    assert kept == {
        source.name,
        saved.name,
        *(p.name for p in stale[: KEEP_BESIDE_MODEL - 1]),  # the newest stale ones
        other_model.name,  # another source's graph is not this source's to prune
    }


def test_pruning_the_shared_cache_folder_keeps_the_newest_of_every_source(
    tmp_path: Path,
) -> None:
    names = [f"model{OPTIMIZED_INFIX}{i:016x}.onnx" for i in range(6)]
    names += [f"flashrank-x{OPTIMIZED_INFIX}{i:016x}.onnx" for i in range(6, 8)]
    for age, name in enumerate(names):
        (tmp_path / name).write_bytes(b"graph")
        os.utime(tmp_path / name, ns=(10**18 - age * 10**12, 10**18 - age * 10**12))
    target = tmp_path / names[-1]
    deleted = prune_optimized(target, keep=3, same_source=False)
    assert (sorted(p.name for p in deleted), _graphs(tmp_path)) == (
        sorted(names[2:-1]),
        {names[0], names[1], names[-1]},
    )
