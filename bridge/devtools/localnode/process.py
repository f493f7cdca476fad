"""Start, health-check and stop one local Elasticsearch/OpenSearch node.

Each node gets its own work directory (config copy, data, logs, tmp) owned by the node user; the
cached distribution is only read. The node runs in its own process group so `stop()` can take the
launcher JVM and the server JVM down together (and `kill()` can SIGKILL it, keeping its data, to be
started again as the same node).

Elasticsearch with ``security=True``: HTTP TLS with certificates made for the node (certs.py), the
`elastic` user's password set through the keystore's `bootstrap.password`, and the self-generated
trial licence (the token service and API keys are not all in the basic one).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bridge.devtools.localnode.distribution import ensure_distribution
from bridge.devtools.localnode.engines import DEFAULT_VERSIONS, engine_spec
from bridge.devtools.localnode.jdk import find_java_home
from bridge.devtools.localnode.plugins import (
    COMPONENTS,
    ensure_knn_plugin,
    ensure_plugins,
    flavour,
    node_settings,
    plugin_closure,
)
from bridge.devtools.localnode.users import NodeUser, chown_tree, node_user
from bridge.errors import NodeError

logger = logging.getLogger(__name__)

# jvm.options lines that write relative to the working directory or fix the heap; replaced below.
_DROPPED_JVM_OPTIONS = re.compile(r"gc\.log|-Xloggc|HeapDumpPath|ErrorFile|-Xm[sx]")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalNode:
    """A single-node cluster on 127.0.0.1 from the engine's Maven Central integ-test zip.

    >>> with LocalNode("elasticsearch") as node:   # doctest: +SKIP
    ...     print(node.url)
    """

    def __init__(
        self,
        engine: str,
        version: str | None = None,
        *,
        cache_dir: Path | None = None,
        work_dir: Path | None = None,
        heap_mb: int = 512,
        settings: Mapping[str, object] | None = None,
        knn: bool | None = None,
        plugins: tuple[str, ...] | None = None,
        startup_timeout: float = 240.0,
        security: bool = False,
        file_users: Mapping[str, tuple[str, Sequence[str]]] | None = None,
        node_name: str | None = None,
    ) -> None:
        self.spec = engine_spec(engine)
        self.engine = engine
        self.version = version or DEFAULT_VERSIONS[engine]
        self.cache_dir = cache_dir
        self.heap_mb = heap_mb
        self.extra_settings = dict(settings or {})
        # None: try k-NN on OpenSearch and carry on without it if it does not install.
        self.knn_requested = knn
        # OpenSearch plugin set (e.g. ("ml", "neural")), completed with what it needs; all required
        self.plugins = plugin_closure(plugins or ()) if engine == "opensearch" else ()
        if plugins and engine != "opensearch":
            raise NodeError("plugins are for OpenSearch nodes only")
        self.extra_settings = {**node_settings(self.plugins), **self.extra_settings}
        self.startup_timeout = startup_timeout
        self.security = security
        if security and engine != "elasticsearch":
            raise NodeError(
                "security=True is Elasticsearch only: OpenSearch's security plugin is not "
                "published on Maven Central for OpenSearch 3.5/3.6, so it cannot be installed "
                "into the integ-test zip"
            )
        self.node_name = node_name or f"rerank-bridge-{engine}-0"
        # security=True: the `elastic` user's password and the CA that signed the node's cert
        self.password: str | None = secrets.token_urlsafe(18) if security else None
        # security=True: more users in the file realm, name -> (password, built-in roles)
        self.file_users = dict(file_users or {})
        self.ca_file: Path | None = None
        self.url: str | None = None
        self.knn_available = False
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir = work_dir
        self._owns_work_dir = work_dir is None
        self._deadline = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> Path:
        """Fetch and unpack the distribution (and the k-NN plugin); return its home directory."""
        if self.plugins:
            home = ensure_distribution(
                self.engine, self.version, self.cache_dir, flavour=flavour(self.plugins)
            )
            ensure_plugins(home, self.version, self.java_home(), self.plugins)
            return home
        home = ensure_distribution(self.engine, self.version, self.cache_dir)
        if self.engine == "opensearch" and self.knn_requested is not False:
            try:
                ensure_knn_plugin(home, self.version, self.java_home())
            except NodeError as exc:
                if self.knn_requested:
                    raise
                logger.warning("OpenSearch k-NN plugin unavailable, continuing without: %s", exc)
        return home

    def java_home(self) -> Path:
        return find_java_home(self.spec.min_java(self.version))

    @property
    def username(self) -> str | None:
        return "elastic" if self.security else None

    def auth_header(self) -> str | None:
        """`Basic …` for the `elastic` user of a node with security on, else None."""
        if self.password is None:
            return None
        token = base64.b64encode(f"elastic:{self.password}".encode()).decode()
        return f"Basic {token}"

    def get_json(self, path: str, timeout: float = 10.0) -> dict[str, Any]:
        """GET a path of this node as JSON (over TLS and as `elastic` when security is on)."""
        if self.url is None:
            raise NodeError(f"{self.engine} node is not running")
        return get_json(
            f"{self.url}{path}", timeout, ca_file=self.ca_file, authorization=self.auth_header()
        )

    def start(self, *, wait: bool = True, keep_data: bool = False) -> str:
        """Start the node and wait until it is yellow or green; return its URL.

        ``wait=False`` returns once the HTTP port is known (a node of a forming cluster cannot
        answer health before the others are up); ``keep_data`` starts again on the data of an
        earlier run (a node killed with `kill()` rejoining its cluster).
        """
        if self.status == "running":
            raise NodeError(f"{self.engine} node already running at {self.url}")
        home = self.prepare()
        java_home = self.java_home()
        user = node_user()
        if user is not None:
            check_reachable(home / "bin", user)
        work = self._make_work_dir(home, user, java_home, keep_data=keep_data)
        env = self._environment(java_home, work)
        console = (work / "logs" / "console.log").open("ab")
        logger.info("starting %s %s in %s", self.engine, self.version, work)
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user.uid, "group": user.gid, "extra_groups": []}
        try:
            self._process = subprocess.Popen(
                [str(home / "bin" / self.spec.executable)],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **extra,
            )
        finally:
            console.close()
        self.pid = self._process.pid
        try:
            port = self._wait_for_port(work / "logs" / "http.ports")
            scheme = "https" if self.security else "http"
            self.url = f"{scheme}://127.0.0.1:{port}"
            if not wait:
                return self.url
            health = self.wait_ready()
        except NodeError as exc:
            tail = self.log_tail()
            self.stop()
            raise NodeError(
                f"{self.engine} {self.version} failed to start: {exc}\n{tail}"
            ) from None
        except BaseException:  # interrupted (Ctrl-C, a test timeout): leave no node behind
            self.stop()
            raise
        missing = [p for p in self.plugins if not _has_plugin(self.url, COMPONENTS[p])]
        if missing:
            tail = self.log_tail()
            self.stop()
            raise NodeError(
                f"plugins {missing} did not load on {self.engine} {self.version}\n{tail}"
            )
        logger.info("%s %s is %s at %s", self.engine, self.version, health, self.url)
        return self.url

    def wait_ready(self, *, nodes: int | None = None, status: str = "yellow") -> str:
        """Block until the cluster is ``status`` (with ``nodes`` nodes); return its status."""
        assert self.url is not None
        health = wait_for_health(
            self.url,
            timeout=self._remaining(),
            process=self._process,
            ca_file=self.ca_file,
            authorization=self.auth_header(),
            nodes=nodes,
            status=status,
        )
        self.knn_available = self.engine == "opensearch" and _has_plugin(self.url, "opensearch-knn")
        return health

    def kill(self) -> None:
        """SIGKILL the node's process group at once (no shutdown), keeping its work dir and data."""
        if self.pid is not None:
            with_group = group_alive(self.pid)
            if with_group:
                os.killpg(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and group_alive(self.pid):
                time.sleep(0.1)
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("node launcher %s did not exit after SIGKILL", self.pid)
        self._process = None
        self.pid = None
        self.url = None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and remove an owned work dir."""
        if self.pid is not None:
            terminate_group(self.pid, timeout=timeout)
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("node launcher %s did not exit after SIGKILL", self.pid)
        self._process = None
        self.pid = None
        self.url = None
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def detach(self) -> None:
        """Forget the process without stopping it (the CLI leaves nodes running on purpose)."""
        self._process = None
        self._owns_work_dir = False

    @property
    def status(self) -> str:
        """'running', 'exited' (died on its own) or 'stopped'."""
        if self.pid is None:
            return "stopped"
        if self._process is not None and self._process.poll() is not None:
            return "exited"
        return "running" if group_alive(self.pid) else "exited"

    @property
    def work_dir(self) -> Path | None:
        return self._work_dir

    def log_tail(self, lines: int = 60) -> str:
        if self._work_dir is None:
            return "(no log: the node was never started)"
        return read_log_tail(self._work_dir / "logs", lines)

    def __enter__(self) -> LocalNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------------

    def _make_work_dir(
        self, home: Path, user: NodeUser | None, java_home: Path, *, keep_data: bool = False
    ) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=f"rerank-bridge-{self.engine}-"))
        work = self._work_dir
        fresh = ("config", "logs", "tmp") if keep_data else ("config", "data", "logs", "tmp")
        for name in fresh:
            shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(home / "config", work / "config")
        for name in ("data", "logs", "tmp"):
            (work / name).mkdir(exist_ok=True)
        settings: dict[str, object] = {
            "cluster.name": f"rerank-bridge-{self.engine}",
            "node.name": self.node_name,
            "path.data": str(work / "data"),
            "path.logs": str(work / "logs"),
            **self.spec.base_settings(self.version),
            **(self._security_settings(work) if self.security else {}),
            **self.extra_settings,
        }
        (work / "config" / self.spec.config_file).write_text(render_settings(settings))
        self._write_jvm_options(work)
        if self.security:
            self._write_keystore(home, java_home, work)
        os.chmod(work, 0o755)
        chown_tree(work, user)
        if user is not None:
            check_reachable(work, user)
        return work

    def _security_settings(self, work: Path) -> dict[str, object]:
        from bridge.devtools.localnode.certs import write_node_certificates

        certs = write_node_certificates(work / "config" / "certs")
        self.ca_file = certs.ca_cert
        return {
            "xpack.security.enabled": True,
            "xpack.security.http.ssl.enabled": True,
            "xpack.security.http.ssl.certificate": str(certs.cert),
            "xpack.security.http.ssl.key": str(certs.key),
            "xpack.security.http.ssl.certificate_authorities": [str(certs.ca_cert)],
            "xpack.license.self_generated.type": "trial",
        }

    def _write_keystore(self, home: Path, java_home: Path, work: Path) -> None:
        """`elasticsearch-keystore create` + `add bootstrap.password` (the `elastic` password),
        then `elasticsearch-users useradd` for each file-realm user."""
        env = self._environment(java_home, work)
        env.pop(self.spec.java_opts_var, None)  # the tools' own small heap, not the node's
        commands: list[tuple[list[str], str | None]] = [
            (["elasticsearch-keystore", "create"], None),
            (
                ["elasticsearch-keystore", "add", "--stdin", "--force", "bootstrap.password"],
                self.password,
            ),
        ]
        for name, (password, roles) in self.file_users.items():
            command = [
                "elasticsearch-users",
                "useradd",
                name,
                "-p",
                password,
                "-r",
                ",".join(roles),
            ]
            commands.append((command, None))
        for args, stdin in commands:
            done = subprocess.run(
                [str(home / "bin" / args[0]), *args[1:]],
                input=stdin,
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise NodeError(
                    f"{args[0]} {args[1]} failed ({done.returncode}): "
                    f"{(done.stdout + done.stderr).strip()[-2000:]}"
                )

    def _write_jvm_options(self, work: Path) -> None:
        options = work / "config" / "jvm.options"
        kept = [
            line
            for line in options.read_text().splitlines()
            if not _DROPPED_JVM_OPTIONS.search(line)
        ]
        options.write_text("\n".join(kept) + "\n")
        extra = work / "config" / "jvm.options.d"
        extra.mkdir(exist_ok=True)
        logs = work / "logs"
        (extra / "rerank-bridge.options").write_text(
            f"-Xms{self.heap_mb}m\n-Xmx{self.heap_mb}m\n"
            f"-XX:HeapDumpPath={logs}\n-XX:ErrorFile={logs}/hs_err_pid%p.log\n"
        )

    def _environment(self, java_home: Path, work: Path) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ES_", "OPENSEARCH_", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"))
        }
        env.pop("JAVA_HOME", None)  # the engines prefer their own variable and warn about this one
        env.update(
            {
                self.spec.java_home_var: str(java_home),
                self.spec.java_opts_var: f"-Xms{self.heap_mb}m -Xmx{self.heap_mb}m",
                self.spec.path_conf_var: str(work / "config"),
                self.spec.tmpdir_var: str(work / "tmp"),
                "HOME": str(work),
            }
        )
        return env

    def _remaining(self) -> float:
        return max(1.0, self._deadline - time.monotonic())

    def _wait_for_port(self, ports_file: Path) -> int:
        self._deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < self._deadline:
            if self._process is not None and self._process.poll() is not None:
                raise NodeError(f"the node process exited with code {self._process.returncode}")
            port = read_port(ports_file)
            if port is not None:
                return port
            time.sleep(0.25)
        raise NodeError(f"no HTTP port after {self.startup_timeout:.0f}s ({ports_file} missing)")


def check_reachable(path: Path, user: NodeUser) -> None:
    """The node user must be able to enter every parent of `path` (e.g. not /root)."""
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid != user.uid and not info.st_mode & 0o001:
            raise NodeError(
                f"node user {user.name!r} cannot enter {parent} "
                f"(mode {oct(info.st_mode & 0o777)}); "
                "use a work dir under a world-traversable directory such as /tmp"
            )


def render_settings(settings: Mapping[str, object]) -> str:
    """Flat `key: value` YAML; every value is JSON, which YAML reads as the same scalar.

    A None value removes a default (e.g. `discovery.type` for a node of a several-node cluster).
    """
    return "".join(
        f"{key}: {json.dumps(value)}\n" for key, value in settings.items() if value is not None
    )


def read_port(ports_file: Path) -> int | None:
    """The first IPv4 port in a `node.portsfile` file (lines like `127.0.0.1:9200`)."""
    try:
        lines = ports_file.read_text().split()
    except OSError:
        return None
    for line in lines:
        host, _, port = line.rpartition(":")
        if host and not host.startswith("[") and port.isdigit():
            return int(port)
    return None


def wait_for_health(
    url: str,
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    ca_file: Path | None = None,
    authorization: str | None = None,
    nodes: int | None = None,
    status: str = "yellow",
) -> str:
    """Block until `_cluster/health` reports ``status`` or better (and ``nodes`` nodes)."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    good = ("green",) if status == "green" else ("green", "yellow")
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NodeError(f"the node process exited with code {process.returncode}")
        wait_s = max(1, min(30, int(deadline - time.monotonic())))
        query = f"wait_for_status={status}&timeout={wait_s}s"
        if nodes is not None:
            query += f"&wait_for_nodes={nodes}"
        try:
            body = get_json(
                f"{url}/_cluster/health?{query}",
                wait_s + 5,
                ca_file=ca_file,
                authorization=authorization,
            )
        except NodeError as exc:
            last_error = str(exc)
            time.sleep(0.5)
            continue
        current = str(body.get("status"))
        if current in good and (nodes is None or body.get("number_of_nodes") == nodes):
            return current
        last_error = f"cluster status {current}, {body.get('number_of_nodes')} nodes"
    raise NodeError(f"cluster not healthy after {timeout:.0f}s: {last_error}")


def get_json(
    url: str,
    timeout: float = 10.0,
    *,
    ca_file: Path | None = None,
    authorization: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(url, headers=headers)
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        if context is not None:
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
            )
        else:
            opener = _NO_PROXY
        with opener.open(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise NodeError(f"GET {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NodeError(f"GET {url}: {exc}") from None
    if isinstance(payload, dict):
        return payload
    return {"items": payload}


def _has_plugin(url: str, name: str) -> bool:
    try:
        body = get_json(f"{url}/_cat/plugins?format=json")
    except NodeError:
        return False
    return any(item.get("component") == name for item in body.get("items", []))


def read_log_tail(logs: Path, lines: int = 60) -> str:
    """The last lines of the console output, plus the server log when the console says little."""
    parts: list[str] = []
    for path in [logs / "console.log", *sorted(logs.glob("*.log"))]:
        if path.name.startswith(("gc", "console")) and path.name != "console.log":
            continue
        if path.name == "console.log" and parts:
            continue
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if text:
            parts.append(f"--- last {min(lines, len(text))} lines of {path} ---")
            parts.extend(text[-lines:])
        if len(parts) > lines:
            break
    return "\n".join(parts) if parts else f"(no log lines under {logs})"


# -- process groups ------------------------------------------------------------------------------


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat_line.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    if Path("/proc/self/stat").exists():
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGTERM the group, wait up to `timeout`, then SIGKILL whatever is left."""
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not group_alive(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.2)
    if group_alive(pgid):
        raise NodeError(f"process group {pgid} survived SIGKILL")
