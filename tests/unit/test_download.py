"""Downloads of known models against a local HTTP server serving zips the tests build."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import subprocess
import sys
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bridge.errors import DownloadError, ModelNotFoundError, OfflineError
from bridge.models import KNOWN_MODELS, download_model, resolve_model
from tests.unit._model_store_helpers import Reply, flashrank_files, model_zip, serve

NAME = "ms-marco-TinyBERT-L-2-v2"
ONNX = KNOWN_MODELS[NAME].onnx_file
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def good_zip() -> bytes:
    return model_zip(flashrank_files(ONNX), folder=NAME)


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANK_BRIDGE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_MODEL_URL", url)


def _cache_entries(cache: Path) -> set[str]:
    """What a download left in the cache, ignoring the (harmless, reusable) lock file."""
    return (
        {p.name for p in cache.iterdir() if not p.name.endswith(".lock")}
        if cache.is_dir()
        else set()
    )


def test_download_installs_the_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False)
    assert sorted(p.name for p in directory.iterdir()) == sorted(flashrank_files(ONNX))


def test_download_requests_the_flashrank_zip_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url + "/base/")
        download_model(NAME, cache_dir=tmp_path, progress=False)
    assert server.requests == [f"/base/{NAME}.zip"]


def test_download_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        download_model(NAME, cache_dir=tmp_path, progress=False)
    assert _cache_entries(tmp_path) == {NAME}


def test_downloaded_model_resolves_as_a_cross_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        files = resolve_model(NAME, cache_dir=tmp_path, progress=False)
    assert (files.kind, files.onnx_path.name) == ("cross", ONNX)


def test_cached_model_is_not_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        download_model(NAME, cache_dir=tmp_path, progress=False)
        download_model(NAME, cache_dir=tmp_path, progress=False)
    assert len(server.requests) == 1


def test_flat_zip_without_a_model_folder_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(Reply(model_zip(flashrank_files(ONNX), folder=None))) as server:
        _point_at(monkeypatch, server.url)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False)
    assert (directory / ONNX).is_file()


def test_interrupted_transfer_raises_download_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip, cut=len(good_zip) // 2)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="interrupted"):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)


def test_interrupted_transfer_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip, cut=len(good_zip) // 2)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)
    assert _cache_entries(tmp_path) == set()


def test_retry_after_an_interrupted_transfer_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip, cut=100), Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)
    assert resolve_model(directory).onnx_path == directory / ONNX


def test_built_in_retry_recovers_from_one_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip, cut=100), Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False, retries=1)
    assert ((directory / ONNX).is_file(), len(server.requests)) == (True, 2)


def test_corrupt_zip_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(Reply(b"PK\x03\x04 this is not really a zip archive" * 10)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="not a valid zip"):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)


def test_zip_with_a_damaged_member_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in flashrank_files(ONNX).items():
            zf.writestr(f"{NAME}/{name}", data)
    damaged = bytearray(buffer.getvalue())
    marker = damaged.index(b"model_max_length")
    damaged[marker] ^= 0xFF  # flip one stored byte: the CRC check must notice
    with serve(Reply(bytes(damaged))) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="damaged"):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)


def test_corrupt_download_leaves_no_model_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(Reply(b"garbage" * 100)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)
    assert _cache_entries(tmp_path) == set()


def _zip_with_entry(info: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in flashrank_files(ONNX).items():
            zf.writestr(f"{NAME}/{name}", content)
        zf.writestr(info, data)
    return buffer.getvalue()


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{NAME}/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry",
    [
        zipfile.ZipInfo("../escaped.txt"),
        zipfile.ZipInfo(f"{NAME}/../../escaped.txt"),
        zipfile.ZipInfo("/tmp/rerank-bridge-escaped.txt"),
        _symlink_entry(),
    ],
    ids=["parent", "nested-parent", "absolute", "symlink"],
)
def test_unsafe_zip_entry_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: zipfile.ZipInfo
) -> None:
    cache = tmp_path / "cache"
    with serve(Reply(_zip_with_entry(entry, b"/etc/passwd"))) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="unsafe zip entry"):
            download_model(NAME, cache_dir=cache, progress=False, retries=0)


def test_unsafe_zip_writes_nothing_outside_or_inside_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with serve(Reply(_zip_with_entry(zipfile.ZipInfo("../escaped.txt"), b"x"))) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError):
            download_model(NAME, cache_dir=cache, progress=False, retries=0)
    assert (sorted(p.name for p in tmp_path.iterdir()), _cache_entries(cache)) == (["cache"], set())


def test_zip_without_the_model_files_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = flashrank_files(ONNX)
    del files["tokenizer.json"]
    with serve(Reply(model_zip(files, folder=NAME))) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match=r"does not contain tokenizer\.json"):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)


def test_http_error_status_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(Reply(b"not found", status=404)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_model(NAME, cache_dir=tmp_path, progress=False)


def test_leftovers_of_a_killed_download_do_not_block_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    (tmp_path / f".{NAME}.abc123.zip.part").write_bytes(b"half a zip")
    (tmp_path / f".{NAME}.def456.tmp").mkdir()
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        download_model(NAME, cache_dir=tmp_path, progress=False)
    assert _cache_entries(tmp_path) == {NAME}


def test_incomplete_cached_copy_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "config.json").write_text("{}")  # e.g. a killed FlashRank extraction
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False)
    assert (directory / ONNX).is_file()


@pytest.mark.parametrize("variable", ["RERANK_BRIDGE_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_names_the_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(OfflineError) as raised:
        download_model(NAME, cache_dir=tmp_path, progress=False)
    assert all(str(tmp_path / NAME / f) in str(raised.value) for f in (ONNX, "tokenizer.json"))


def test_offline_mode_makes_no_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_OFFLINE", "1")
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(OfflineError):
            resolve_model(NAME, cache_dir=tmp_path, progress=False)
    assert server.requests == []


def test_offline_mode_still_resolves_a_cached_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        download_model(NAME, cache_dir=tmp_path, progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(NAME, cache_dir=tmp_path).kind == "cross"


def test_unknown_name_lists_known_names_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model("ms-marco-TinyBERT-L-3", cache_dir=tmp_path)
    assert all(name in str(raised.value) for name in KNOWN_MODELS)


def test_download_of_an_unknown_name_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="ms-marco-MiniLM-L-12-v2"):
        download_model("not-a-model", cache_dir=tmp_path)


_CHILD = textwrap.dedent(
    """
    import sys
    from bridge.models import download_model
    print(download_model(sys.argv[1], cache_dir=sys.argv[2], progress=False))
    """
)


@pytest.mark.slow
def test_two_processes_downloading_at_once_end_with_one_good_copy(
    tmp_path: Path, good_zip: bytes
) -> None:
    padded = flashrank_files(ONNX)
    padded["padding.bin"] = os.urandom(160_000)  # incompressible: ~40 slow chunks
    body = model_zip(padded, folder=NAME)
    with serve(Reply(body, delay_per_chunk=0.05)) as server:
        env = {**os.environ, "RERANK_BRIDGE_MODEL_URL": server.url, "PYTHONPATH": str(REPO_ROOT)}
        env.pop("RERANK_BRIDGE_OFFLINE", None)
        env.pop("HF_HUB_OFFLINE", None)
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, NAME, str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outcomes = [child.communicate(timeout=120) for child in children]
    codes = [child.returncode for child in children]
    assert (codes, len(server.requests), _cache_entries(tmp_path)) == ([0, 0], 1, {NAME}), outcomes


def test_progress_falls_back_to_a_stderr_line_without_tqdm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    good_zip: bytes,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as in a core install
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        download_model(NAME, cache_dir=tmp_path, progress=True)
    assert f"downloading {NAME}" in capsys.readouterr().err


def test_pinned_checksum_mismatch_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    pinned = dataclasses.replace(KNOWN_MODELS[NAME], sha256="0" * 64)
    monkeypatch.setitem(KNOWN_MODELS, NAME, pinned)
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        with pytest.raises(DownloadError, match="sha256"):
            download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)


def test_pinned_checksum_match_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_zip: bytes
) -> None:
    digest = hashlib.sha256(good_zip).hexdigest()
    pinned = dataclasses.replace(KNOWN_MODELS[NAME], sha256=digest, zip_size=len(good_zip))
    monkeypatch.setitem(KNOWN_MODELS, NAME, pinned)
    with serve(Reply(good_zip)) as server:
        _point_at(monkeypatch, server.url)
        directory = download_model(NAME, cache_dir=tmp_path, progress=False, retries=0)
    assert (directory / ONNX).is_file()
