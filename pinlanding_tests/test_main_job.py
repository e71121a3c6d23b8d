"""The command-line entry point's own duties: the instance settings it ships."""

from pathlib import Path

from dagster import DagsterInstance

from pinlanding_assets.main_job import install_instance_settings


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
