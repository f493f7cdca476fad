"""Pure parts of bridge.devtools.localnode: settings, ports file, archives, JDK, process groups."""

from __future__ import annotations

import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from bridge.devtools.localnode.distribution import safe_extract
from bridge.devtools.localnode.engines import engine_spec, knn_plugin_version
from bridge.devtools.localnode.jdk import find_java_home, java_major
from bridge.devtools.localnode.maven import artifact_url
from bridge.devtools.localnode.process import (
    check_reachable,
    group_alive,
    read_port,
    render_settings,
    terminate_group,
)
from bridge.devtools.localnode.state import NodeState, load_state, save_state
from bridge.devtools.localnode.users import NodeUser
from bridge.errors import NodeError


def test_render_settings_round_trips_through_yaml() -> None:
    settings = {"http.port": 0, "node.portsfile": True, "path.data": "/tmp/a b", "x": "y: z"}
    assert yaml.safe_load(render_settings(settings)) == settings


def test_read_port_takes_the_ipv4_line(tmp_path: Path) -> None:
    ports = tmp_path / "http.ports"
    ports.write_text("[::1]:41001\n127.0.0.1:41000\n")
    assert read_port(ports) == 41000


def test_read_port_is_none_until_the_file_exists(tmp_path: Path) -> None:
    assert read_port(tmp_path / "http.ports") is None


def test_artifact_url_follows_the_maven_layout() -> None:
    url = artifact_url("org.opensearch.plugin:opensearch-knn:3.5.0.0:zip", "https://repo.example")
    assert url == (
        "https://repo.example/org/opensearch/plugin/opensearch-knn/3.5.0.0/opensearch-knn-3.5.0.0.zip"
    )


@pytest.mark.parametrize(
    ("engine", "version", "java"),
    [("elasticsearch", "8.19.4", 17), ("elasticsearch", "9.5.4", 21), ("opensearch", "3.5.0", 21)],
)
def test_minimum_java_per_engine_version(engine: str, version: str, java: int) -> None:
    assert engine_spec(engine).min_java(version) == java


def test_unknown_engine_is_a_node_error() -> None:
    with pytest.raises(NodeError, match="unknown engine"):
        engine_spec("solr")


def test_knn_plugin_version_adds_a_fourth_digit() -> None:
    assert knn_plugin_version("3.5.0") == "3.5.0.0"


def test_elasticsearch_9_turns_security_off() -> None:
    settings = engine_spec("elasticsearch").base_settings("9.5.4")
    assert settings["xpack.security.enabled"] is False


def test_opensearch_gets_no_xpack_setting() -> None:
    assert not any(k.startswith("xpack") for k in engine_spec("opensearch").base_settings("3.5.0"))


def make_zip(path: Path, entries: dict[str, tuple[bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, (data, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            bundle.writestr(info, data)
    return path


def test_safe_extract_keeps_the_executable_bit(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"es/bin/elasticsearch": (b"#!/bin/sh\n", 0o755)})
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "es" / "bin" / "elasticsearch").stat().st_mode & 0o111


def test_safe_extract_refuses_entries_outside_the_target(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "evil.zip", {"../escaped.txt": (b"x", 0o644)})
    with pytest.raises(NodeError, match="escapes"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_removes_a_truncated_archive(tmp_path: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(NodeError, match="not a valid zip"):
        safe_extract(archive, tmp_path / "out")
    assert not archive.exists()


def fake_jdk(root: Path, version: str) -> Path:
    home = root / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_major_reads_the_release_file(tmp_path: Path) -> None:
    assert java_major(fake_jdk(tmp_path, "25.0.3")) == 25


def test_java_home_override_wins_when_new_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = fake_jdk(tmp_path, "21.0.1")
    monkeypatch.setenv("RERANK_BRIDGE_JAVA_HOME", str(home))
    assert find_java_home(21) == home.resolve()


def test_java_home_too_old_for_the_engine_is_not_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = fake_jdk(tmp_path, "11.0.2")
    monkeypatch.setenv("RERANK_BRIDGE_JAVA_HOME", str(old))
    monkeypatch.setenv("JAVA_HOME", str(old))
    try:
        chosen = find_java_home(17)
    except NodeError:
        return  # no system JDK >= 17 here: refusing is the right answer too
    assert chosen != old.resolve()


def test_node_state_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_BRIDGE_NODES_DIR", str(tmp_path))
    state = NodeState("opensearch", "3.5.0", 1234, "http://127.0.0.1:9", str(tmp_path / "w"))
    save_state(state)
    assert load_state("opensearch") == state


def test_terminate_group_stops_every_process_of_the_group() -> None:
    process = subprocess.Popen(
        ["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        terminate_group(process.pid, timeout=5)
        process.wait(timeout=5)
        assert not group_alive(process.pid)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_private_parent_dir_is_refused_for_the_node_user(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "work").mkdir(parents=True)
    private.chmod(0o700)
    stranger = NodeUser(name="nobody-here", uid=os.getuid() + 12345, gid=os.getgid() + 12345)
    with pytest.raises(NodeError, match="cannot enter"):
        check_reachable(private / "work", stranger)
