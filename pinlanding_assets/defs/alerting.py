"""Alerting on failed asset checks and failed runs (open-source Dagster alerts on neither).

`check_failure_alert_sensor` sends one alert per failed check evaluation, and one per failed
run (a step raised, a blocking check stopped it, or its process died and left no check
result), through `AlertResource` (ledger file + Dagster log, optionally a webhook). Every
tick also retries the webhook posts that failed earlier and are due again.

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
from typing import TYPE_CHECKING

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

from ..core.alerts import (
    Alert,
    AlertLedger,
    CheckAlert,
    DeliveryReport,
    RunFailureAlert,
    WebhookTarget,
    alert_text,
    deliver,
    run_error_text,
)
from ..core.settings import default_home

if TYPE_CHECKING:  # the error records of Dagster events; not part of the public API
    from dagster_shared.error import SerializableErrorInfo

# Terminal run states: a run's check evaluations are complete once one of these is stored.
FINISHED_RUN_EVENTS = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)
RUNS_PER_TICK = 50  # per terminal state; the rest waits for the next tick (bounded tick time)
ALERTS_FILE_NAME = "alerts/check_alerts.jsonl"
WEBHOOK_URL_ENV = "PINLANDING_ALERT_WEBHOOK_URL"


class AlertResource(ConfigurableResource):
    """Where alerts go. The ledger file is always written (and logged); a webhook (e.g. a
    Slack incoming-webhook URL) is optional.

    The webhook URL is a credential (whoever has a Slack webhook URL can post to the
    channel), so it is not a config value, which the UI would show: the resource holds the
    *name* of the environment variable and reads the URL from it when it sends."""

    alerts_file: str
    webhook_url_env: str = WEBHOOK_URL_ENV  # unset or empty variable = no webhook
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8  # posts per alert, the first included, before giving up
    webhook_retry_after_seconds: float = 60.0  # wait after the first failed post; doubles after each
    dagster_ui_url: str | None = None  # e.g. http://localhost:3000: adds a run link to alerts

    def run_url(self, run_id: str) -> str | None:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}" if self.dagster_ui_url else None

    def webhook(self) -> WebhookTarget | None:
        url = os.environ.get(self.webhook_url_env, "").strip() if self.webhook_url_env else ""
        if not url:
            return None
        return WebhookTarget(url, self.webhook_timeout_seconds, self.webhook_max_attempts, self.webhook_retry_after_seconds)

    def send(self, alerts: list[Alert], log) -> DeliveryReport:
        """Record and post the new alerts, and post again the earlier ones that are due."""
        webhook = self.webhook()
        report = deliver(alerts, AlertLedger(self.alerts_file), webhook)
        for alert in report.recorded:
            (log.error if alert.severity == "ERROR" else log.warning)(f"alert: {alert_text(alert)}")
        for alert_id, status in report.failed.items():
            # The URL is never logged; the variable's name says where it came from.
            log.error(f"alert {alert_id}: webhook (${self.webhook_url_env}) {status}; the alert is in {self.alerts_file}")
        if report.not_attempted:
            log.warning(f"{len(report.not_attempted)} alerts not posted after that failure; they are retried on later ticks")
        for alert_id in report.gave_up:
            log.error(f"alert {alert_id}: gave up on the webhook after {self.webhook_max_attempts} attempts; the alert stays in {self.alerts_file}")
        return report


def default_alert_resource() -> AlertResource:
    """Ledger under the data home; UI link from the environment (optional). The webhook URL
    is read from PINLANDING_ALERT_WEBHOOK_URL at send time (see `AlertResource`)."""
    return AlertResource(
        alerts_file=str(default_home() / ALERTS_FILE_NAME),
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


def partition_of(evaluation: AssetCheckEvaluation, run_tags: dict[str, str]) -> str | None:
    """The partition a check evaluated: its own (a check with a `partitions_def`, as the
    project's checks of shard assets have, `defs/partitions.shard_check`), else the run's
    partition tags (a check without one records no partition, dagster 1.13)."""
    return evaluation.partition or run_partition(run_tags)


def run_partition(run_tags: dict[str, str]) -> str | None:
    """The run's partition tag, else its partition range (`start...end`), else None."""
    if run_tags.get("dagster/partition"):
        return run_tags["dagster/partition"]
    start, end = run_tags.get("dagster/asset_partition_range_start"), run_tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


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
        evaluated_at=utc_iso(record.timestamp),
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
    records = run_records(instance, run_id, {DagsterEventType.ASSET_CHECK_EVALUATION})
    failed = [r for r in records if not r.event_log_entry.dagster_event.event_specific_data.passed]
    if not failed:
        return []
    run = instance.get_run_by_id(run_id)
    run_tags = dict(run.tags) if run else {}
    return [alert_for(r, partition_of(r.event_log_entry.dagster_event.event_specific_data, run_tags), job_name, alerts) for r in failed]


def root_cause(error: "SerializableErrorInfo") -> str:
    """The innermost error of a chain on one line: Dagster wraps a step's own exception in
    "Error occurred while executing op …", and the exception under it says what went wrong."""
    while error.cause is not None:
        error = error.cause
    return " ".join(error.message.split())


def run_failure_alert(instance: DagsterInstance, record: EventLogRecord, alerts: AlertResource) -> RunFailureAlert:
    """The alert for one RUN_FAILURE event, with the run's failure message, its own error
    (JobFailureData) and the root cause of each failed step's error."""
    entry = record.event_log_entry
    failure = entry.dagster_event.event_specific_data if entry.dagster_event else None  # JobFailureData | None
    step_errors = {}
    for step in run_records(instance, record.run_id, {DagsterEventType.STEP_FAILURE}):
        step_error = step.event_log_entry.dagster_event.event_specific_data.error
        step_errors[step.event_log_entry.step_key] = root_cause(step_error) if step_error else "failed"
    run_error = root_cause(failure.error) if failure is not None and failure.error is not None else None
    run = instance.get_run_by_id(record.run_id)
    return RunFailureAlert(
        alert_id=f"{record.run_id}:run_failure",
        run_id=record.run_id,
        job_name=entry.job_name or (run.job_name if run else None),
        partition=run_partition(dict(run.tags) if run else {}),
        failed_at=utc_iso(record.timestamp),
        error=run_error_text(entry.message, run_error, step_errors),
        run_url=alerts.run_url(record.run_id),
    )


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """{terminal event type name: event-log cursor}; no cursor = from the start of history."""
    return json.loads(cursor) if cursor else {}


@sensor(
    name="check_failure_alerts",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Sends one alert per failed asset-check evaluation and one per failed run (ledger file + log, "
        "optional webhook); retries failed webhook posts."
    ),
)
def check_failure_alert_sensor(context: SensorEvaluationContext, alerts: AlertResource) -> SensorResult:
    positions = parse_cursor(context.cursor)
    runs_seen = 0
    found: list[Alert] = []
    for event_type in FINISHED_RUN_EVENTS:
        finished = context.instance.fetch_run_status_changes(event_type, limit=RUNS_PER_TICK, cursor=positions.get(event_type.value), ascending=True)
        for record in finished.records:
            found += failed_check_alerts(context.instance, record.run_id, record.event_log_entry.job_name, alerts)
            if event_type == DagsterEventType.RUN_FAILURE:
                found.append(run_failure_alert(context.instance, record, alerts))
        runs_seen += len(finished.records)
        # One position per event type: the types are fetched one after the other, so a single
        # shared position could skip a run that finished in between. Dagster stores the cursor
        # only when the tick returns; if a tick dies midway, the next one reads these runs
        # again and the ledger drops the alerts already recorded.
        positions[event_type.value] = finished.cursor
    # One delivery per tick, even with nothing new: it also posts the earlier failures that
    # are due again, and a dead webhook costs one timeout per tick, not one per run.
    report = alerts.send(found, context.log)
    # No runs are requested, so every tick counts as "skipped"; the reason shows what it did.
    summary = (
        f"{runs_seen} finished runs read, {len(report.recorded)} new alerts, "
        f"{len(report.posted)} posted to the webhook, {len(report.failed)} posts failed, {len(report.not_attempted)} not attempted, "
        f"{report.waiting} waiting for a retry"
    )
    return SensorResult(cursor=json.dumps(positions, sort_keys=True), skip_reason=summary)
