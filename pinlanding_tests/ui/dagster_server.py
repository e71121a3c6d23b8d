"""`dagster dev` as a test fixture: a private DAGSTER_HOME, a free loopback port, bounded
waits, and shutdown of the whole process group (webserver, daemon, code server, run workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

WORKSPACE_STATUS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

# An instance config for tests: no telemetry, no "join the community" dialog in the UI, and
# one run at a time (the warehouse is one DuckDB file with one writer: if a sensor is turned
# on by default some day, its runs queue behind the test's run instead of racing for the lock).
TEST_INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
"""


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_dagster_home(dagster_home: Path) -> Path:
    """The directory with a test dagster.yaml. Create the instance's databases (open a
    `DagsterInstance` on it) before starting the server: two processes creating the SQLite
    schema at once corrupt its migration table."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(TEST_INSTANCE_YAML)
    return dagster_home


def _default_signals() -> None:
    # A server started from a background shell inherits SIGINT/SIGTERM as ignored; restore
    # the defaults so the graceful SIGINT shutdown below works wherever the test runs.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDevServer:
    """`dagster dev -w workspace.yaml` from the repository, on 127.0.0.1:<free port>."""

    def __init__(self, dagster_home: Path, env: dict[str, str], log_path: Path):
        self.dagster_home = dagster_home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(dagster_home)}
        self.process: subprocess.Popen | None = None

    def start(self) -> "DagsterDevServer":
        prepare_dagster_home(self.dagster_home)
        dagster = Path(sys.executable).parent / "dagster"
        command = [str(dagster), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(self.port)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_signals,
        )
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def graphql(self, query: str, timeout: float = 10.0) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def wait_until_ready(self, timeout: float = 240.0) -> None:
        """Until the webserver answers and the code location is LOADED (or fails to load)."""
        deadline = time.monotonic() + timeout
        last = "not started"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                entries = self.graphql(WORKSPACE_STATUS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
                statuses = {e["name"]: e for e in entries}
                last = str(statuses)
                if statuses and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise ServerError(f"code location failed to load: {errors}")
                    return
            except (urllib.error.URLError, OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
                last = repr(exc)
            time.sleep(1.0)
        raise ServerError(f"dagster dev not ready after {timeout:.0f}s (last: {last}):\n{self.log_tail()}")

    def stop(self, grace_seconds: float = 30.0) -> None:
        """SIGINT to the process group (what Ctrl-C does), then SIGKILL whatever is left."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the server leads its own group
        try:
            os.killpg(group, signal.SIGINT)
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                pass
            _wait_group_gone(group, timeout=10.0)
        except ProcessLookupError:
            pass
        finally:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.process.poll() is None:
                self.process.wait(timeout=10)
            self._log.close()

    def __enter__(self) -> "DagsterDevServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_group_gone(group: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
