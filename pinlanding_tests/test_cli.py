"""The command-line entry point's own duties: the instance settings it ships, the rounds it runs."""

import importlib
import tomllib
from pathlib import Path

from dagster import DagsterInstance

from pinlanding_assets import cli
from pinlanding_assets.cli import install_instance_settings
from pinlanding_assets.core.settings import REPO_ROOT


def test_shipped_instance_settings_load_and_are_never_written_over(tmp_path: Path) -> None:
    install_instance_settings(tmp_path)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 3
        assert concurrency.pool_config.default_pool_limit == 1 and concurrency.pool_config.pool_granularity.value == "run"
        assert instance.get_settings("python_logs")["managed_python_loggers"] == ["pinlanding_assets.core"]
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # the user's own
    install_instance_settings(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_the_installed_command_is_what_make_run_runs() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["pinlanding"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main
    assert f"-m {module} $(ARGS)" in (REPO_ROOT / "Makefile").read_text()


def test_rounds_run_the_graph_n_times_and_publish_after_the_last(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(cli, "run_graph", lambda defs, instance, shards, run_config, force, retrain, publish: calls.append((force, publish)) or [cli.StageRun(f"pass{len(calls)}", 0.0, "ran")])
    stages = cli.run_rounds(None, None, 3, force=True)
    assert calls == [(True, False), (False, False), (False, True)]  # forced once, published once, at the end
    assert [s.label for s in stages] == ["pass3"]
    assert cli.sampling_method({"ops": {"raw_attributes": {"config": {"active_sampling": "uncertainty"}}}}) == "uncertainty"
    assert cli.sampling_method(None) == cli.sampling_method({"ops": {}}) == "random"
