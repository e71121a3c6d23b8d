"""`make run` checks the machine first: on problems it prints one line each and exits 2
before Dagster is even imported (so in its first second, not at the last step)."""

import subprocess
import sys

from pinlanding_assets.core.settings import REPO_ROOT
from pinlanding_assets.cli import EXIT_OK, EXIT_PREFLIGHT, main

RUN_MAIN = """
import sys
from pinlanding_assets.cli import main
status = main([])
print("dagster imported:", "dagster" in sys.modules)
sys.exit(status)
"""


def test_make_run_stops_at_the_preflight_with_one_line_per_problem(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"PATH": "/usr/bin:/bin", "PINLANDING_CATALOG": str(tmp_path / "no-catalog"), "PINLANDING_HOME": str(blocker / "home")}
    run = subprocess.run([sys.executable, "-c", RUN_MAIN], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == EXIT_PREFLIGHT == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"preflight: catalog: catalog not found: {tmp_path / 'no-catalog'} (set PINLANDING_CATALOG or the catalog resource)",
        f"preflight: data home (PINLANDING_HOME) {blocker / 'home'} cannot be made: {blocker} is not a directory",
        f"preflight: Dagster home (DAGSTER_HOME) {blocker / 'home' / 'dagster'} cannot be made: {blocker} is not a directory",
        "exit status 2: 3 problem(s) above; nothing was run",
    ]
    assert run.stdout.splitlines()[-1] == "dagster imported: False"


def test_preflight_only_on_a_fit_machine(tmp_path, sample_catalog, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PINLANDING_CATALOG", str(sample_catalog))
    monkeypatch.setenv("PINLANDING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    assert main(["--preflight"]) == EXIT_OK
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.startswith("preflight: Java ") and " for Spark from " in out.out
    assert not (tmp_path / "home").exists()  # a check only: it ran nothing
