"""Alerts for failed quality checks and failed runs: what an alert says and where it goes.

Plain Python (no Dagster): the Dagster sensor in `defs/alerting.py` turns failed asset-check
evaluations into `CheckAlert`s and failed (or crashed) runs into `RunFailureAlert`s, and
hands them to `deliver`.

Delivery channels:
- the alert ledger, an appended JSON-lines file (always on). Each line is one alert with the
  outcome of one step of its webhook delivery (recorded, posted, failed, not attempted), so
  the file alone says which alerts are still to be posted: pending alerts survive a restart
  of the process, and an alert the webhook accepted is never posted again;
- a webhook (optional): a Slack-compatible JSON body `{"text": ..., "alert": {...}}` POSTed
  to a configurable URL (Slack incoming webhooks read `text`; other receivers can read the
  structured `alert` object). Delivery is at least once: a failed post is retried on later
  calls, after a wait that doubles with each failure, until the receiver accepts it or the
  attempts run out. A crash between a successful post and its ledger line means one
  duplicate, never a loss.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

ALERT_SOURCE = "pinlanding"
ERROR_TEXT_LIMIT = 1000  # characters of a run's error kept in its alert (chat messages stay readable)

# Webhook outcomes written in a ledger line's `webhook` field. `failed: …` and
# `not attempted: …` carry the reason after the colon.
SENT = "sent"
NOT_CONFIGURED = "not configured"
FAILED = "failed"
NOT_ATTEMPTED = "not attempted"
# Ledger-only fields of a line; every other field is the alert itself.
DELIVERY_FIELDS = frozenset({"text", "webhook", "attempts", "recorded_at"})


@dataclass(frozen=True)
class CheckAlert:
    """One failed check evaluation. `alert_id` is stable for the evaluation (run id plus the
    evaluation event's storage id), so the same evaluation always maps to the same alert."""

    kind: ClassVar[str] = "check_failure"

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
        return json_safe({"kind": self.kind, **record})


@dataclass(frozen=True)
class RunFailureAlert:
    """One failed run, whether a step raised, a blocking check stopped it, or its process
    died (then no check result says anything). `alert_id` is `<run id>:run_failure`."""

    kind: ClassVar[str] = "run_failure"

    alert_id: str
    run_id: str
    job_name: str | None
    partition: str | None
    failed_at: str  # ISO-8601, UTC
    error: str  # what failed and why, at most ERROR_TEXT_LIMIT characters
    run_url: str | None = None
    severity: str = "ERROR"

    def as_record(self) -> dict:
        return json_safe({"kind": self.kind, **asdict(self)})


Alert = CheckAlert | RunFailureAlert


@dataclass(frozen=True)
class WebhookTarget:
    """Where alerts are posted and how hard to try. A failed post is tried again after
    `retry_after_seconds`, then after twice that, and so on, `max_attempts` posts in all."""

    url: str
    timeout_seconds: float = 5.0
    max_attempts: int = 8
    retry_after_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"webhook max_attempts must be at least 1, got {self.max_attempts}")
        if self.retry_after_seconds < 0 or self.timeout_seconds <= 0:
            raise ValueError("webhook retry_after_seconds must be >= 0 and timeout_seconds > 0")

    def __repr__(self) -> str:  # the URL is a secret (a Slack webhook URL is its own credential)
        return f"WebhookTarget(url=<hidden>, timeout_seconds={self.timeout_seconds}, max_attempts={self.max_attempts})"

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed post: retry_after_seconds x 2^(attempts-1)."""
        return timedelta(seconds=self.retry_after_seconds * 2 ** (attempts - 1))


@dataclass
class DeliveryReport:
    """What one `deliver` call did."""

    recorded: list[Alert] = field(default_factory=list)  # alerts new to the ledger
    known: list[str] = field(default_factory=list)  # ids already in the ledger (or twice in the call): not recorded again
    posted: list[str] = field(default_factory=list)  # ids the webhook accepted in this call
    failed: dict[str, str] = field(default_factory=dict)  # id -> why its post failed in this call
    not_attempted: list[str] = field(default_factory=list)  # ids due but not posted: the webhook had just failed
    gave_up: list[str] = field(default_factory=list)  # ids whose last allowed attempt failed now
    waiting: int = 0  # alerts left for a later call: failed or not attempted, attempts left


class WebhookError(RuntimeError):
    """A post that did not reach the receiver. Its message never contains the URL."""


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


def alert_text(alert: Alert) -> str:
    """One line a person can act on, e.g.
    `[WARN] raw_attributes.attribute_coverage failed for partition apparel: value 0.82, threshold 0.9 (run 1a2b3c4d, job shard_ingest)`
    or `[ERROR] run 1a2b3c4d failed (job shard_ingest, partition apparel): step raw_attributes: OSError: …`."""
    if isinstance(alert, RunFailureAlert):
        context = ", ".join(part for part in (f"job {alert.job_name}" if alert.job_name else "", f"partition {alert.partition}" if alert.partition else "") if part)
        text = f"[{alert.severity}] run {alert.run_id[:8]} failed" + (f" ({context})" if context else "") + f": {alert.error}"
    else:
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


def run_error_text(failure_message: str, run_error: str | None, step_errors: Mapping[str, str]) -> str:
    """What a failed run's alert says went wrong, on one line of at most ERROR_TEXT_LIMIT
    characters: the run's failure message (for a run whose process died, all there is), the
    run's own error unless it is one of its steps' (Dagster copies the first step's error
    there), then each failed step with its error."""
    parts = [failure_message]
    if run_error and run_error not in step_errors.values():
        parts.append(run_error)
    parts += [f"step {step}: {error}" for step, error in step_errors.items()]
    text = "; ".join(" ".join(part.split()) for part in parts if part and part.strip()) or "no error was recorded"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def webhook_payload(alert_record: Mapping[str, object], text: str) -> dict:
    """Slack incoming webhooks display `text`; the structured copy is for other receivers."""
    return {"text": text, "source": ALERT_SOURCE, "alert": dict(alert_record)}


def check_webhook_url(url: str) -> None:
    """Raise a `WebhookError` that says what is wrong with the URL without quoting it: the
    URL is a credential, and urllib's own errors for bad URLs print it whole."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookError("webhook URL is malformed: it contains spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise WebhookError("webhook URL is malformed: it does not parse (bad host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("webhook URL is malformed: it must start with http:// or https://")
    if not parts.hostname:
        raise WebhookError("webhook URL is malformed: it has no host")


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302/303 by turning the POST into a GET without the body and
    report the GET's 200: the alert would count as sent though nobody received it. Refusing
    the redirect makes urllib raise the 3xx as an HTTP error instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def post_webhook(target: WebhookTarget, payload: Mapping[str, object]) -> None:
    """POST the payload; return only when the receiver answered 2xx, else raise WebhookError."""
    check_webhook_url(target.url)
    body = json.dumps(payload, allow_nan=False).encode("utf-8")
    request = urllib.request.Request(target.url, data=body, method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(RefuseRedirects)
    # The original exceptions are not chained (`from None`): some of them quote the URL.
    try:
        with opener.open(request, timeout=target.timeout_seconds) as response:
            response.read()
    except urllib.error.HTTPError as exc:  # every non-2xx status, redirects included
        if 300 <= exc.code < 400:
            raise WebhookError(f"webhook answered HTTP {exc.code}, a redirect: not delivered (configure the final URL)") from None
        raise WebhookError(f"webhook answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise WebhookError(f"webhook unreachable: {exc.reason}") from None
    except OSError as exc:  # connection reset, timeout while reading the answer
        raise WebhookError(f"webhook unreachable: {type(exc).__name__}: {exc}") from None
    except http.client.HTTPException as exc:  # its text may quote the URL: the type says enough
        raise WebhookError(f"webhook gave no valid HTTP answer: {type(exc).__name__}") from None
    except ValueError:
        raise WebhookError("webhook URL is malformed: urllib refused it") from None


@dataclass(frozen=True)
class LedgerEntry:
    """Where one alert stands: its latest ledger line, which holds the whole alert, the
    outcome of the latest step, the number of posts so far (`attempts`) and when it was
    written (`recorded_at`)."""

    line: Mapping[str, object]

    @property
    def attempts(self) -> int:
        return int(self.line.get("attempts") or 0)

    @property
    def outcome(self) -> str:
        return str(self.line.get("webhook", ""))

    @property
    def settled(self) -> bool:
        """Posted, or there was no webhook to post to. Lines without `attempts` were written
        by the earlier at-most-once delivery, which never retried: they are settled too."""
        return self.outcome in (SENT, NOT_CONFIGURED) or "attempts" not in self.line

    def due(self, webhook: WebhookTarget, now: datetime) -> bool:
        """Still to be posted, with attempts left and its backoff wait over. An alert that was
        not tried because the webhook had just failed waits as if it had failed once (without
        using up an attempt)."""
        if self.settled or self.attempts >= webhook.max_attempts:
            return False
        waiting_since = parse_time(self.line.get("recorded_at"))
        return waiting_since is None or now >= waiting_since + webhook.retry_delay(max(self.attempts, 1))

    def alert_record(self) -> dict:
        return {key: value for key, value in self.line.items() if key not in DELIVERY_FIELDS}


class AlertLedger:
    """The JSON-lines file of every alert and every step of its delivery (one object per line)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every line, in order. A torn last line (a crash mid-write) is skipped: it must not
        block alerting."""
        if not self.path.exists():
            return []
        lines = []
        with self.path.open(encoding="utf-8") as handle:
            for text in handle:
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if isinstance(line, dict) and "alert_id" in line:
                    lines.append(line)
        return lines

    def entries(self) -> dict[str, LedgerEntry]:
        """alert id -> where it stands, in the order the alerts were first recorded."""
        entries: dict[str, LedgerEntry] = {}
        for line in self.read():
            entries[line["alert_id"]] = LedgerEntry(line)  # a later line supersedes, in place
        return entries

    def known_ids(self) -> set[str]:
        return set(self.entries())

    def pending(self, webhook: WebhookTarget) -> list[LedgerEntry]:
        """Alerts not yet accepted by the webhook that still have attempts left (due or not)."""
        return [e for e in self.entries().values() if not e.settled and e.attempts < webhook.max_attempts]

    def append(self, line: Mapping[str, object]) -> None:
        # One line per write, flushed to disk at once: outcomes already written survive a
        # crash later in the same sensor tick.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def parse_time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def deliver(alerts: Iterable[Alert], ledger: AlertLedger, webhook: WebhookTarget | None = None, now: datetime | None = None) -> DeliveryReport:
    """Record each alert not yet in the ledger, and post to the webhook (if configured) every
    alert that is due: earlier failures whose backoff wait is over (oldest first), then the
    new ones. Each outcome is one ledger line. After the first failed post the rest of this
    call is not posted (a dead endpoint must not stall the sensor tick for timeout x alerts):
    new alerts get a `not attempted` line and stay pending, like the earlier ones."""
    now = now or datetime.now(timezone.utc)
    report = DeliveryReport()
    entries = ledger.entries()
    new: dict[str, Alert] = {}
    for alert in alerts:
        if alert.alert_id in entries or alert.alert_id in new:
            report.known.append(alert.alert_id)
        else:
            new[alert.alert_id] = alert

    if webhook is None:
        for alert in new.values():
            ledger.append({**alert.as_record(), "text": alert_text(alert), "webhook": NOT_CONFIGURED, "recorded_at": now.isoformat()})
            report.recorded.append(alert)
        return report

    due = [(e.alert_record(), str(e.line["text"]), e.attempts) for e in entries.values() if e.due(webhook, now)]
    due += [(alert.as_record(), alert_text(alert), 0) for alert in new.values()]
    webhook_down: str | None = None
    for record, text, attempts in due:
        line = {**record, "text": text, "recorded_at": now.isoformat()}
        alert_id = str(record["alert_id"])
        if webhook_down is not None:
            report.not_attempted.append(alert_id)
            if alert_id in new:  # earlier alerts are in the ledger already, and stay pending
                ledger.append({**line, "webhook": f"{NOT_ATTEMPTED}: {webhook_down}", "attempts": 0})
        else:
            try:
                post_webhook(webhook, webhook_payload(record, text))
                outcome = SENT
                report.posted.append(alert_id)
            except WebhookError as exc:
                webhook_down = str(exc)
                outcome = f"{FAILED}: {exc}"
                report.failed[alert_id] = outcome
                if attempts + 1 >= webhook.max_attempts:
                    report.gave_up.append(alert_id)
            ledger.append({**line, "webhook": outcome, "attempts": attempts + 1})
        if alert_id in new:
            report.recorded.append(new[alert_id])
    report.waiting = len(ledger.pending(webhook))
    return report
