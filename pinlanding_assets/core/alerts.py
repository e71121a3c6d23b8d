"""Alerts for failed quality checks: what an alert says and where it goes.

Plain Python (no Dagster): the Dagster sensor in `defs/alerting.py` turns failed asset-check
evaluations into `CheckAlert`s and hands them to `deliver`.

Delivery channels:
- the alert ledger, an appended JSON-lines file (always on): one line per alert, with the
  outcome of the webhook delivery. It is also what makes delivery idempotent: an alert whose
  id is already in the ledger is never sent again, even if the sensor's cursor is lost;
- a webhook (optional): a Slack-compatible JSON body `{"text": ..., "alert": {...}}` POSTed
  to a configurable URL (Slack incoming webhooks read `text`; other receivers can read the
  structured `alert` object).
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

ALERT_SOURCE = "pinlanding"


@dataclass(frozen=True)
class CheckAlert:
    """One failed check evaluation. `alert_id` is stable for the evaluation (run id plus the
    evaluation event's storage id), so the same evaluation always maps to the same alert."""

    alert_id: str
    asset: str
    partition: str | None
    check: str
    severity: str  # "ERROR" (blocking checks) or "WARN"
    value: float | int | str | None
    threshold: float | int | str | None
    run_id: str
    job_name: str | None
    evaluated_at: str  # ISO-8601, UTC
    description: str | None = None
    run_url: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    def as_record(self) -> dict:
        record = asdict(self)
        record["metadata"] = dict(self.metadata)
        return json_safe(record)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    timeout_seconds: float = 5.0


@dataclass
class DeliveryReport:
    """What one `deliver` call did; `webhook_failures` maps alert id -> error text."""

    delivered: list[CheckAlert] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    webhook_failures: dict[str, str] = field(default_factory=dict)


class WebhookError(RuntimeError):
    pass


def json_safe(value: object) -> object:
    """NaN/inf are not JSON: they become null (a check whose value could not be measured)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def format_number(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def alert_text(alert: CheckAlert) -> str:
    """One line a person can act on, e.g.
    `[WARN] raw_attributes.attribute_coverage failed for partition apparel: value 0.82, threshold 0.9 (run 1a2b3c4d, job shard_ingest)`."""
    where = f" for partition {alert.partition}" if alert.partition else ""
    job = f", job {alert.job_name}" if alert.job_name else ""
    text = (
        f"[{alert.severity}] {alert.asset}.{alert.check} failed{where}: "
        f"value {format_number(alert.value)}, threshold {format_number(alert.threshold)} "
        f"(run {alert.run_id[:8]}{job})"
    )
    if alert.run_url:
        text += f" {alert.run_url}"
    return text


def webhook_payload(alert: CheckAlert) -> dict:
    """Slack incoming webhooks display `text`; the structured copy is for other receivers."""
    return {"text": alert_text(alert), "source": ALERT_SOURCE, "alert": alert.as_record()}


def post_webhook(target: WebhookTarget, payload: Mapping[str, object]) -> None:
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(target.url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=target.timeout_seconds) as response:
            response.read()
    except urllib.error.HTTPError as exc:  # urlopen raises for every non-2xx status
        raise WebhookError(f"webhook answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookError(f"webhook unreachable: {exc}") from exc


class AlertLedger:
    """The JSON-lines file of every alert sent (one object per line)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def sent_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        ids = set()
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    ids.add(json.loads(line)["alert_id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line (crash mid-write) must not block alerting
        return ids

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def append(self, record: Mapping[str, object]) -> None:
        # One line per write, flushed to disk at once: alerts already written survive a crash
        # later in the same sensor tick, and the ledger then stops them being sent twice.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def deliver(alerts: Iterable[CheckAlert], ledger: AlertLedger, webhook: WebhookTarget | None = None) -> DeliveryReport:
    """Send each alert not yet in the ledger: webhook first (if configured), then one ledger
    line recording the webhook outcome. After the first webhook failure the remaining alerts
    of this call are not posted (a dead endpoint must not stall the sensor tick for
    timeout x alerts); their ledger lines say so."""
    report = DeliveryReport()
    sent = ledger.sent_ids()
    webhook_down: str | None = None
    for alert in alerts:
        if alert.alert_id in sent:
            report.already_sent.append(alert.alert_id)
            continue
        webhook_status = "not configured"
        if webhook is not None:
            if webhook_down is not None:
                webhook_status = f"not attempted: {webhook_down}"
            else:
                try:
                    post_webhook(webhook, webhook_payload(alert))
                    webhook_status = "sent"
                except WebhookError as exc:
                    webhook_down = str(exc)
                    webhook_status = f"failed: {exc}"
            if webhook_status != "sent":
                report.webhook_failures[alert.alert_id] = webhook_status
        ledger.append({**alert.as_record(), "text": alert_text(alert), "webhook": webhook_status})
        sent.add(alert.alert_id)
        report.delivered.append(alert)
    return report
