"""The alert sensor (failed checks, failed runs) against a real on-disk Dagster instance.

The instance is `DagsterInstance.local_temp`: the same run-sharded SQLite storage that
`dagster dev` uses with a DAGSTER_HOME (the ephemeral in-memory instance stores events
differently and would hide cursor bugs)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Config,
    DagsterInstance,
    DagsterRun,
    Definitions,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
    build_sensor_context,
    materialize,
)

from pinlanding_assets.core.alerts import AlertLedger
from pinlanding_assets.defs.alerting import WEBHOOK_URL_ENV, AlertResource, check_failure_alert_sensor, default_alert_resource

shards = StaticPartitionsDefinition(["apparel", "footwear"])


class CoverageConfig(Config):
    coverage: float = 0.95
    min_coverage: float = 0.9


@asset(partitions_def=shards, check_specs=[AssetCheckSpec("coverage", asset="tiny_shard")])
def tiny_shard(config: CoverageConfig) -> MaterializeResult:
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name="coverage",
                passed=config.coverage >= config.min_coverage,
                severity=AssetCheckSeverity.WARN,
                metadata={"value": config.coverage, "threshold": config.min_coverage, "rows": 12},
            )
        ]
    )


@asset(check_specs=[AssetCheckSpec("recall", asset="tiny_model", blocking=True)])
def tiny_model() -> MaterializeResult:
    return MaterializeResult(
        check_results=[AssetCheckResult(check_name="recall", passed=False, severity=AssetCheckSeverity.ERROR, metadata={"value": float("nan"), "threshold": 0.95})]
    )


@asset(deps=[tiny_model])
def tiny_pages() -> None:
    pass


@asset(partitions_def=shards)
def broken_shard() -> None:
    raise RuntimeError("disk full while writing the shard")


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        yield instance


@pytest.fixture
def alerts(tmp_path) -> AlertResource:
    return AlertResource(alerts_file=str(tmp_path / "alerts" / "check_alerts.jsonl"), dagster_ui_url="http://127.0.0.1:3000/")


def run_shard(instance, shard: str, coverage: float):
    config = {"ops": {"tiny_shard": {"config": {"coverage": coverage, "min_coverage": 0.9}}}}
    result = materialize([tiny_shard], instance=instance, partition_key=shard, run_config=config)
    assert result.success
    return result


def tick(instance, alerts: AlertResource, cursor: str | None):
    """One sensor evaluation in a fresh context, as the daemon does after a restart."""
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts})
    result = check_failure_alert_sensor(context)
    return result.cursor


def ledger(alerts: AlertResource) -> list[dict]:
    return AlertLedger(alerts.alerts_file).read()


def test_failing_check_produces_exactly_one_alert(instance, alerts):
    run = run_shard(instance, "apparel", coverage=0.5)
    tick(instance, alerts, None)
    lines = ledger(alerts)
    assert len(lines) == 1
    alert = lines[0]
    assert (alert["asset"], alert["partition"], alert["check"], alert["severity"]) == ("tiny_shard", "apparel", "coverage", "WARN")
    assert (alert["value"], alert["threshold"], alert["run_id"]) == (0.5, 0.9, run.run_id)
    assert alert["metadata"] == {"rows": 12}
    assert alert["run_url"] == f"http://127.0.0.1:3000/runs/{run.run_id}"
    assert alert["webhook"] == "not configured"
    assert "[WARN] tiny_shard.coverage failed for partition apparel: value 0.5, threshold 0.9" in alert["text"]


def test_passing_check_produces_no_alert(instance, alerts):
    run = run_shard(instance, "apparel", coverage=0.95)
    assert [e.passed for e in run.get_asset_check_evaluations()] == [True]
    tick(instance, alerts, None)
    assert ledger(alerts) == []


def test_restart_with_stored_cursor_does_not_resend(instance, alerts):
    run_shard(instance, "apparel", coverage=0.5)
    cursor = tick(instance, alerts, None)
    assert len(ledger(alerts)) == 1
    # The ledger line is the only record of what was sent: move it away so that only the
    # cursor can stop a resend.
    sent = ledger(alerts)
    AlertLedger(alerts.alerts_file).path.unlink()
    assert tick(instance, alerts, cursor) == cursor
    assert ledger(alerts) == []
    # The cursor still moves on: a new failure after the restart is alerted, once.
    footwear = run_shard(instance, "footwear", coverage=0.1)
    run_shard(instance, "apparel", coverage=0.99)
    cursor = tick(instance, alerts, cursor)
    lines = ledger(alerts)
    assert [(a["partition"], a["run_id"]) for a in lines] == [("footwear", footwear.run_id)]
    assert lines[0]["alert_id"] != sent[0]["alert_id"]
    tick(instance, alerts, cursor)
    assert len(ledger(alerts)) == 1


def test_lost_cursor_does_not_resend_thanks_to_ledger(instance, alerts):
    run_shard(instance, "apparel", coverage=0.5)
    tick(instance, alerts, None)
    tick(instance, alerts, None)  # cursor reset (e.g. sensor reset in the UI)
    assert len(ledger(alerts)) == 1


def test_failed_blocking_check_fails_the_run_and_alerts_once(instance, alerts):
    result = materialize([tiny_model, tiny_pages], instance=instance, raise_on_error=False)
    assert not result.success  # the blocking ERROR check stopped tiny_pages
    tick(instance, alerts, None)
    lines = ledger(alerts)
    # The failed check, and the run it failed (one alert each).
    assert [line["kind"] for line in lines] == ["check_failure", "run_failure"]
    check, run = lines
    assert (check["asset"], check["check"], check["severity"], check["partition"]) == ("tiny_model", "recall", "ERROR", None)
    assert check["value"] is None  # NaN metadata is written as null, not as invalid JSON
    assert check["job_name"] == "__ephemeral_asset_job__"
    assert (run["run_id"], run["severity"]) == (result.run_id, "ERROR")
    assert "step tiny_model" in run["error"]


def test_one_alert_per_failed_evaluation_across_runs(instance, alerts):
    runs = [run_shard(instance, shard, coverage) for shard, coverage in [("apparel", 0.5), ("footwear", 0.2), ("apparel", 0.95), ("apparel", 0.3)]]
    tick(instance, alerts, None)
    lines = ledger(alerts)
    assert sorted(a["run_id"] for a in lines) == sorted([runs[0].run_id, runs[1].run_id, runs[3].run_id])
    assert len({a["alert_id"] for a in lines}) == 3


class RecordingHandler(BaseHTTPRequestHandler):
    received: list = []
    failures_left = 0  # answer 503 to this many posts first

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        failing = type(self).failures_left > 0
        type(self).failures_left -= failing
        self.send_response(503 if failing else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    RecordingHandler.received, RecordingHandler.failures_left = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, RecordingHandler.received
    server.shutdown()
    server.server_close()


def test_sensor_posts_one_slack_payload_per_failure_and_retries_on_later_ticks(instance, tmp_path, webhook_server, monkeypatch):
    """The URL comes from the environment at send time; the receiver refuses the first post,
    and a later tick (no new run) posts the alert again, once."""
    server, received = webhook_server
    RecordingHandler.failures_left = 1
    monkeypatch.setenv(WEBHOOK_URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/hooks/quality")
    alerts = AlertResource(alerts_file=str(tmp_path / "alerts.jsonl"), webhook_retry_after_seconds=0)
    run = run_shard(instance, "footwear", coverage=0.25)
    run_shard(instance, "apparel", coverage=0.97)
    cursor = tick(instance, alerts, None)
    assert [line["webhook"] for line in ledger(alerts)] == ["failed: webhook answered HTTP 503"]
    cursor = tick(instance, alerts, cursor)
    tick(instance, alerts, cursor)
    assert len(received) == 2 and received[0] == received[1]
    path, content_type, payload = received[1]
    assert (path, content_type) == ("/hooks/quality", "application/json")
    assert payload["text"].startswith("[WARN] tiny_shard.coverage failed for partition footwear: value 0.25, threshold 0.9")
    assert payload["alert"]["run_id"] == run.run_id and payload["alert"]["partition"] == "footwear"
    assert [line["webhook"] for line in ledger(alerts)] == ["failed: webhook answered HTTP 503", "sent"]


def test_the_ui_shows_the_webhook_variable_not_the_url(monkeypatch):
    """What the UI displays of a resource is the code location's snapshot: the URL (a
    credential) must not be in it."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    monkeypatch.setenv(WEBHOOK_URL_ENV, "https://hooks.slack.com/services/T000/B000/SECRETTOKEN")
    defs = Definitions(assets=[tiny_shard], sensors=[check_failure_alert_sensor], resources={"alerts": default_alert_resource()})
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "SECRETTOKEN" not in snapshot
    assert WEBHOOK_URL_ENV in snapshot  # the UI says where the URL comes from


def test_definitions_with_alert_sensor_load(alerts):
    defs = Definitions(assets=[tiny_shard], sensors=[check_failure_alert_sensor], resources={"alerts": alerts})
    Definitions.validate_loadable(defs)
    assert check_failure_alert_sensor.required_resource_keys == {"alerts"}


def test_partition_is_the_evaluations_own_else_the_runs(instance):
    """A check with its own partitions_def records the partition it evaluated; one without
    (tiny_shard's, dagster 1.13) records none, and the alert takes the run's partition tags."""
    from dagster import AssetCheckEvaluation, AssetKey, DagsterEventType

    from pinlanding_assets.defs.alerting import partition_of, run_records

    run = run_shard(instance, "footwear", coverage=0.5).dagster_run
    (record,) = run_records(instance, run.run_id, {DagsterEventType.ASSET_CHECK_EVALUATION})
    unpartitioned = record.event_log_entry.dagster_event.event_specific_data
    assert unpartitioned.partition is None
    assert partition_of(unpartitioned, run_tags=dict(run.tags)) == "footwear"
    assert partition_of(unpartitioned, run_tags={"dagster/asset_partition_range_start": "apparel", "dagster/asset_partition_range_end": "footwear"}) == "apparel...footwear"
    assert partition_of(unpartitioned, run_tags={}) is None
    own = AssetCheckEvaluation(asset_key=AssetKey("tiny_shard"), check_name="coverage", passed=False, partition="apparel")
    assert partition_of(own, run_tags={"dagster/partition": "footwear"}) == "apparel"


def test_real_raw_attributes_check_failure_is_alerted(instance, alerts, tmp_path):
    """The project's own asset on the sample catalog: an unreachable coverage threshold fails
    `attribute_coverage` for the shard; `quarantine_share` passes and is not alerted."""
    from pinlanding_assets.core.settings import SAMPLE_CATALOG
    from pinlanding_assets.defs.extraction_assets import raw_attributes
    from pinlanding_assets.defs.partitions import shard_partitions
    from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, default_resources

    instance.add_dynamic_partitions(shard_partitions.name, ["apparel"])
    # The code location's own (offline) defaults, with this test's data home and catalog.
    resources = default_resources() | {"data_home": DataHomeResource(home=str(tmp_path / "pinlanding_home")), "catalog": CatalogResource(location=str(SAMPLE_CATALOG))}
    run_config = {"ops": {"raw_attributes": {"config": {"min_coverage": 1.01}}}}
    result = materialize([raw_attributes], instance=instance, partition_key="apparel", resources=resources, run_config=run_config)
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes["attribute_coverage"] is False and outcomes["quarantine_share"] is True
    # The shard's checks are partitioned like the asset: each evaluation records its shard.
    assert {e.check_name: e.partition for e in result.get_asset_check_evaluations()} == dict.fromkeys(outcomes, "apparel")
    tick(instance, alerts, None)
    # One alert per failed evaluation of the run (other checks of the asset may fail too).
    assert [(a["check"], a["partition"]) for a in ledger(alerts)] == [(name, "apparel") for name, passed in outcomes.items() if not passed]
    (alert,) = [a for a in ledger(alerts) if a["check"] == "attribute_coverage"]
    assert (alert["asset"], alert["partition"], alert["check"], alert["threshold"], alert["run_id"]) == ("raw_attributes", "apparel", "attribute_coverage", 1.01, result.run_id)
    assert 0.0 <= alert["value"] <= 1.0


def test_a_run_whose_step_raises_is_alerted_once_with_its_error(instance, alerts):
    """No check result at all: the run failure itself is the alert."""
    result = materialize([broken_shard], instance=instance, partition_key="footwear", raise_on_error=False)
    assert not result.success
    cursor = tick(instance, alerts, None)
    tick(instance, alerts, cursor)
    tick(instance, alerts, None)  # a reset cursor does not resend either (ledger id)
    (alert,) = ledger(alerts)
    assert (alert["kind"], alert["alert_id"], alert["severity"]) == ("run_failure", f"{result.run_id}:run_failure", "ERROR")
    assert (alert["run_id"], alert["partition"], alert["job_name"]) == (result.run_id, "footwear", "__ephemeral_asset_job__")
    assert "step broken_shard: RuntimeError: disk full while writing the shard" in alert["error"]
    assert alert["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert alert["text"].startswith(f"[ERROR] run {result.run_id[:8]} failed (job __ephemeral_asset_job__, partition footwear): ")


def test_a_run_whose_process_died_is_alerted(instance, alerts):
    """A crashed run worker leaves no step failure and no check result: Dagster's run
    monitoring marks the run failed with a message, and that message is the alert."""
    run = instance.add_run(DagsterRun(job_name="shard_ingest", run_id="0f0e0d0c-0000-4000-8000-000000000001", tags={"dagster/partition": "apparel"}))
    instance.report_run_failed(run, message="Run worker process exited unexpectedly (signal 9)")
    tick(instance, alerts, None)
    (alert,) = ledger(alerts)
    assert (alert["kind"], alert["run_id"], alert["job_name"], alert["partition"]) == ("run_failure", run.run_id, "shard_ingest", "apparel")
    assert alert["error"] == "Run worker process exited unexpectedly (signal 9)"
