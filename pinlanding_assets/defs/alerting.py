"""Alerting on failed asset checks (open-source Dagster does not alert on them by itself).

`check_failure_alert_sensor` sends one alert per failed check evaluation through
`AlertResource` (ledger file + Dagster log, optionally a webhook).

How it finds the evaluations: its cursor walks the instance's run-finished events (success,
failure, cancellation), and for each finished run it reads that run's
ASSET_CHECK_EVALUATION events. Why not a cursor over ASSET_CHECK_EVALUATION events directly
(`get_event_records(EventRecordsFilter(..., after_cursor=<storage id>))`): on the default
SQLite instance that `dagster dev` uses, events are stored in one database per run, that call
raises for an integer cursor, and storage ids are not unique across runs. Run-finished events
are mirrored into the instance-wide index on every storage, so the cursor below is exact on
SQLite and Postgres alike, and a run's evaluations are all stored by the time it finishes.
"""


import json
import math
import os
from datetime import datetime, timezone

from dagster import (
    AssetCheckEvaluation,
    ConfigurableResource,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogRecord,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from ..core.alerts import AlertLedger, CheckAlert, DeliveryReport, WebhookTarget, alert_text, deliver
from ..core.settings import default_home

# Terminal run states: a run's check evaluations are complete once one of these is stored.
FINISHED_RUN_EVENTS = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)
RUNS_PER_TICK = 50  # per terminal state; the rest waits for the next tick (bounded tick time)
ALERTS_FILE_NAME = "alerts/check_alerts.jsonl"


class AlertResource(ConfigurableResource):
    """Where check-failure alerts go. The ledger file is always written (and logged); a
    webhook (e.g. a Slack incoming-webhook URL) is optional."""

    alerts_file: str
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    dagster_ui_url: str | None = None  # e.g. http://localhost:3000: adds a run link to alerts

    def run_url(self, run_id: str) -> str | None:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}" if self.dagster_ui_url else None

    def send(self, alerts: list[CheckAlert], log) -> DeliveryReport:
        webhook = WebhookTarget(self.webhook_url, self.webhook_timeout_seconds) if self.webhook_url else None
        report = deliver(alerts, AlertLedger(self.alerts_file), webhook)
        for alert in report.delivered:
            (log.error if alert.severity == "ERROR" else log.warning)(f"check alert: {alert_text(alert)}")
        for alert_id, status in report.webhook_failures.items():
            log.error(f"check alert {alert_id}: webhook {status}; the alert is in {self.alerts_file}")
        return report


def default_alert_resource() -> AlertResource:
    """Ledger under the data home; webhook and UI link from the environment (both optional)."""
    return AlertResource(
        alerts_file=str(default_home() / ALERTS_FILE_NAME),
        webhook_url=os.environ.get("PINLANDING_ALERT_WEBHOOK_URL") or None,
        dagster_ui_url=os.environ.get("PINLANDING_DAGSTER_UI_URL") or None,
    )


def metadata_value(value: object) -> object:
    """Dagster metadata values -> plain JSON-able values (NaN -> None)."""
    raw = getattr(value, "value", value)
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    if raw is None or isinstance(raw, bool | int | float | str | list | dict):
        return raw
    return str(raw)


def partition_of(evaluation: AssetCheckEvaluation, materialized: dict[tuple, str], run_tags: dict[str, str]) -> str | None:
    """The partition a check evaluated. In-asset checks of a partitioned asset leave
    `evaluation.partition` empty (dagster 1.13), so use the partition of the materialization
    the check targeted (same asset, same timestamp), else the run's partition tags."""
    if evaluation.partition:
        return evaluation.partition
    target = evaluation.target_materialization_data
    if target is not None and (evaluation.asset_key, target.timestamp) in materialized:
        return materialized[(evaluation.asset_key, target.timestamp)]
    if run_tags.get("dagster/partition"):
        return run_tags["dagster/partition"]
    start, end = run_tags.get("dagster/asset_partition_range_start"), run_tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


def alert_for(record: EventLogRecord, partition: str | None, job_name: str | None, alerts: AlertResource) -> CheckAlert:
    evaluation = record.event_log_entry.dagster_event.event_specific_data
    metadata = {key: metadata_value(value) for key, value in evaluation.metadata.items()}
    return CheckAlert(
        alert_id=f"{record.run_id}:{record.storage_id}",
        asset=evaluation.asset_key.to_user_string(),
        partition=partition,
        check=evaluation.check_name,
        severity=evaluation.severity.value,
        value=metadata.get("value"),
        threshold=metadata.get("threshold"),
        run_id=record.run_id,
        job_name=job_name,
        evaluated_at=datetime.fromtimestamp(record.timestamp, timezone.utc).isoformat(),
        description=evaluation.description,
        run_url=alerts.run_url(record.run_id),
        metadata={k: v for k, v in metadata.items() if k not in ("value", "threshold")},
    )


def run_records(instance: DagsterInstance, run_id: str, event_types: set) -> list[EventLogRecord]:
    records: list[EventLogRecord] = []
    cursor = None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=event_types, limit=1000)
        records.extend(page.records)
        if not page.has_more:
            return records
        cursor = page.cursor


def failed_check_alerts(instance: DagsterInstance, run_id: str, job_name: str | None, alerts: AlertResource) -> list[CheckAlert]:
    """One alert per failed ASSET_CHECK_EVALUATION of the run, in event order."""
    records = run_records(instance, run_id, {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_MATERIALIZATION})
    materialized = {
        (r.asset_key, r.timestamp): r.partition_key for r in records if r.event_type == DagsterEventType.ASSET_MATERIALIZATION and r.partition_key
    }
    failed = [r for r in records if r.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and not r.event_log_entry.dagster_event.event_specific_data.passed]
    if not failed:
        return []
    run = instance.get_run_by_id(run_id)
    run_tags = dict(run.tags) if run else {}
    return [alert_for(r, partition_of(r.event_log_entry.dagster_event.event_specific_data, materialized, run_tags), job_name, alerts) for r in failed]


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """{terminal event type name: event-log cursor}; no cursor = from the start of history."""
    return json.loads(cursor) if cursor else {}


@sensor(
    name="check_failure_alerts",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends one alert per failed asset-check evaluation (ledger file + log, optional webhook).",
)
def check_failure_alert_sensor(context: SensorEvaluationContext, alerts: AlertResource) -> SensorResult:
    positions = parse_cursor(context.cursor)
    runs_seen = 0
    alerts_sent = 0
    for event_type in FINISHED_RUN_EVENTS:
        finished = context.instance.fetch_run_status_changes(event_type, limit=RUNS_PER_TICK, cursor=positions.get(event_type.value), ascending=True)
        for record in finished.records:
            found = failed_check_alerts(context.instance, record.run_id, record.event_log_entry.job_name, alerts)
            alerts_sent += len(alerts.send(found, context.log).delivered)
        runs_seen += len(finished.records)
        # One position per event type: the types are fetched one after the other, so a single
        # shared position could skip a run that finished in between. Dagster stores the cursor
        # only when the tick returns; if a tick dies midway, the next one reads these runs
        # again and the ledger drops the alerts already sent.
        positions[event_type.value] = finished.cursor
    # No runs are requested, so every tick counts as "skipped"; the reason shows what it did.
    summary = f"{runs_seen} finished runs read, {alerts_sent} alerts sent"
    return SensorResult(cursor=json.dumps(positions, sort_keys=True), skip_reason=summary)
