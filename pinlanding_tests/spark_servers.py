"""Spark servers on loopback for tests and the matching benchmark, started from the venv's
pyspark package: a standalone master with one worker, and a Spark Connect server.

Each server is a child process of ours (the launch scripts `exec` java, so the pid we hold
is the JVM's) bound to 127.0.0.1 on free ports, with its logs, pid files, work and conf
directories in a temporary folder (an empty SPARK_CONF_DIR: no spark-defaults.conf of the
machine leaks in), and stopped by that pid. The pyspark wheel ships `sbin/start-connect-server.sh`
but not `start-master.sh`/`start-worker.sh`, so all three are started the way those scripts
end up starting them: `bin/spark-class <main class>` / `bin/spark-submit --class <server>`.

Python workers of every server run this interpreter with this checkout first on
PYTHONPATH, so executors import the package under test (torch and all).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
REPO_ROOT = Path(__file__).resolve().parents[1]
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def java_missing_reason() -> str | None:
    """Why Spark servers cannot start here, or None when they can (the project's own choice
    of Java, `core/java_runtime.py`, which sets JAVA_HOME for the servers started after)."""
    from pinlanding_assets.core.java_runtime import JavaRuntimeError, use_java_runtime

    try:
        use_java_runtime()
    except JavaRuntimeError as error:
        return f"no Java for Spark, so no standalone cluster or Spark Connect server can start: {error}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SparkServer:
    name: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def wait_until(self, ready, what: str, timeout_s: float) -> None:
        """Polls `ready()` until true; fails with the server's log when it dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}) before {what}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name}: no {what} after {timeout_s:.0f}s:\n{self.log_tail()}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def server_environment(workdir: Path) -> dict[str, str]:
    for name in ("logs", "pids", "conf", "work"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOG_DIR=str(workdir / "logs"),
        SPARK_PID_DIR=str(workdir / "pids"),
        SPARK_CONF_DIR=str(workdir / "conf"),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOCAL_HOSTNAME="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    for variable in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "MASTER"):  # ours must not point elsewhere
        env.pop(variable, None)
    return env


def start_server(name: str, command: list[str], workdir: Path) -> SparkServer:
    log = workdir / "logs" / f"{name}.out"
    env = server_environment(workdir)
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir / "work")
    return SparkServer(name, process, log)


@dataclass
class StandaloneCluster:
    master_url: str
    servers: list[SparkServer] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.servers):  # the worker first, then the master
            server.stop()


def start_standalone_cluster(workdir: Path, worker_cores: int = 1, worker_memory: str = "1g", timeout_s: float = 120) -> StandaloneCluster:
    """A master and one worker on loopback; returns once the worker has registered."""
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port = free_port()
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}")
    try:
        master = start_server(
            "master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())], workdir
        )
        cluster.servers.append(master)
        master.wait_until(lambda: port_open(port), "master port open", timeout_s)
        worker = start_server(
            "worker",
            [
                spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", str(free_port()),
                "--cores", str(worker_cores), "--memory", worker_memory, "--work-dir", str(workdir / "work"), cluster.master_url,
            ],
            workdir,
        )
        cluster.servers.append(worker)
        worker.wait_until(lambda: "Successfully registered with master" in worker.log.read_text(errors="replace"), "registration with the master", timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_connect_server(workdir: Path, master: str = "local[2]", driver_memory: str = "2g", timeout_s: float = 120) -> tuple[SparkServer, str]:
    """A Spark Connect server (what `sbin/start-connect-server.sh` starts) running `master`;
    returns it and its `sc://` URL once its gRPC port accepts connections."""
    port = free_port()
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--class", CONNECT_SERVER_CLASS, "--name", "pinlanding-connect",
        "--master", master, "--driver-memory", driver_memory,
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.log.level=WARN",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "spark-internal",
    ]
    server = start_server("connect", command, workdir)
    server.wait_until(lambda: port_open(port), "gRPC port open", timeout_s)
    return server, f"sc://127.0.0.1:{port}"
