"""Alert formatting, the JSON-lines ledger and webhook delivery with retries (no Dagster)."""

import json
import socket
import threading
import traceback
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pinlanding_assets.core.alerts import (
    AlertLedger,
    CheckAlert,
    RunFailureAlert,
    WebhookError,
    WebhookTarget,
    alert_text,
    deliver,
    post_webhook,
    webhook_payload,
)


def make_alert(alert_id: str = "run-1:12", **changes) -> CheckAlert:
    fields = dict(
        alert_id=alert_id,
        asset="raw_attributes",
        partition="apparel",
        check="attribute_coverage",
        severity="WARN",
        value=0.8234567,
        threshold=0.9,
        run_id="1a2b3c4d-0000-1111-2222-333344445555",
        job_name="shard_ingest",
        evaluated_at="2026-11-24T01:00:00+00:00",
    )
    fields.update(changes)
    return CheckAlert(**fields)


def test_alert_text_names_asset_partition_check_value_threshold_and_run():
    text = alert_text(make_alert(run_url="http://localhost:3000/runs/1a2b"))
    assert text == (
        "[WARN] raw_attributes.attribute_coverage failed for partition apparel: value 0.8235, threshold 0.9 "
        "(run 1a2b3c4d, job shard_ingest) http://localhost:3000/runs/1a2b"
    )


def test_alert_text_without_partition_and_unmeasured_value():
    text = alert_text(make_alert(partition=None, severity="ERROR", value=float("nan"), job_name=None))
    assert text == "[ERROR] raw_attributes.attribute_coverage failed: value n/a, threshold 0.9 (run 1a2b3c4d)"


def test_payload_is_slack_compatible_and_valid_json():
    alert = make_alert(value=float("nan"), metadata={"checked": 12, "worst": float("inf")})
    payload = webhook_payload(alert.as_record(), alert_text(alert))
    decoded = json.loads(json.dumps(payload, allow_nan=False))  # strict JSON: no NaN tokens
    assert decoded["text"].startswith("[WARN] raw_attributes.attribute_coverage failed")
    assert decoded["alert"]["value"] is None
    assert decoded["alert"]["metadata"] == {"checked": 12, "worst": None}
    assert decoded["alert"]["partition"] == "apparel"
    assert decoded["alert"]["kind"] == "check_failure"


def test_ledger_appends_one_line_per_new_alert_and_skips_known_ids(tmp_path):
    ledger = AlertLedger(tmp_path / "alerts" / "check_alerts.jsonl")
    first = deliver([make_alert("a"), make_alert("b")], ledger)
    assert [a.alert_id for a in first.recorded] == ["a", "b"]
    second = deliver([make_alert("b"), make_alert("c")], ledger)
    assert [a.alert_id for a in second.recorded] == ["c"]
    assert second.known == ["b"]
    lines = ledger.path.read_text().splitlines()
    assert [json.loads(line)["alert_id"] for line in lines] == ["a", "b", "c"]
    assert json.loads(lines[0])["webhook"] == "not configured"


def test_ledger_survives_a_torn_last_line(tmp_path):
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    deliver([make_alert("a")], ledger)
    with ledger.path.open("a") as handle:
        handle.write('{"alert_id": "b", "as')  # crash mid-write
    assert ledger.known_ids() == {"a"}
    assert [a.alert_id for a in deliver([make_alert("a"), make_alert("b")], ledger).recorded] == ["b"]


class Receiver(BaseHTTPRequestHandler):
    status = 200
    bodies: list = []

    def do_POST(self):
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.status, Receiver.bodies = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Receiver
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more


def test_webhook_receives_each_new_alert_once(receiver, tmp_path):
    url, handler = receiver
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    deliver([make_alert("a"), make_alert("b", partition="footwear")], ledger, WebhookTarget(url))
    deliver([make_alert("a"), make_alert("b")], ledger, WebhookTarget(url))
    assert [(b["alert"]["alert_id"], b["alert"]["partition"]) for b in handler.bodies] == [("a", "apparel"), ("b", "footwear")]
    assert all(set(b) == {"text", "source", "alert"} for b in handler.bodies)
    assert [r["webhook"] for r in ledger.read()] == ["sent", "sent"]


def test_webhook_http_error_is_raised(receiver):
    url, handler = receiver
    handler.status = 500
    with pytest.raises(WebhookError, match="HTTP 500"):
        post_webhook(WebhookTarget(url), {"text": "x"})


def test_unreachable_webhook_is_recorded_in_ledger_not_lost(tmp_path):
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    report = deliver([make_alert("a"), make_alert("b")], ledger, WebhookTarget(closed_port_url(), timeout_seconds=2))
    statuses = [r["webhook"] for r in ledger.read()]
    assert [r["alert_id"] for r in ledger.read()] == ["a", "b"]
    assert statuses[0].startswith("failed: webhook unreachable")
    assert statuses[1].startswith("not attempted: webhook unreachable")  # no second timeout in the same tick
    assert (list(report.failed), report.not_attempted) == (["a"], ["b"])


def test_run_failure_alert_text_and_record():
    alert = RunFailureAlert(
        alert_id="1a2b3c4d-0000:run_failure",
        run_id="1a2b3c4d-0000",
        job_name="shard_ingest",
        partition="apparel",
        failed_at="2026-11-24T01:00:00+00:00",
        error="step raw_attributes: OSError: [Errno 28] No space left on device",
        run_url="http://localhost:3000/runs/1a2b3c4d-0000",
    )
    assert alert_text(alert) == (
        "[ERROR] run 1a2b3c4d failed (job shard_ingest, partition apparel): "
        "step raw_attributes: OSError: [Errno 28] No space left on device http://localhost:3000/runs/1a2b3c4d-0000"
    )
    assert alert.as_record()["kind"] == "run_failure"


class FlakyReceiver(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures_left` posts, then 200."""

    failures_left = 0
    bodies: list = []

    def do_POST(self):
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        failing = type(self).failures_left > 0
        type(self).failures_left -= failing
        self.send_response(503 if failing else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_receiver():
    FlakyReceiver.failures_left, FlakyReceiver.bodies = 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", FlakyReceiver
    server.shutdown()
    server.server_close()


T0 = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def posted_ids(handler) -> list[str]:
    return [body["alert"]["alert_id"] for body in handler.bodies]


def test_failed_posts_are_retried_with_backoff_until_accepted_and_survive_a_restart(flaky_receiver, tmp_path):
    """The receiver fails twice, then accepts. Each call uses a new ledger object on the same
    file (as after a restart of the process): what is pending comes from the file alone."""
    url, handler = flaky_receiver
    handler.failures_left = 2
    path = tmp_path / "alerts.jsonl"
    hook = WebhookTarget(url, max_attempts=5, retry_after_seconds=60)

    first = deliver([make_alert("a"), make_alert("b")], AlertLedger(path), hook, now=T0)
    assert (first.posted, list(first.failed), first.not_attempted) == ([], ["a"], ["b"])  # b is not tried after a failed
    assert posted_ids(handler) == ["a"]

    # Before the first wait (60 s) is over nothing is posted, and known alerts are not recorded again.
    early = deliver([make_alert("a")], AlertLedger(path), hook, now=T0 + timedelta(seconds=30))
    assert (early.posted, early.failed, early.known) == ([], {}, ["a"])
    assert posted_ids(handler) == ["a"]

    # After it: both are due; a fails again (second 503), b is not tried.
    second = deliver([], AlertLedger(path), hook, now=T0 + timedelta(seconds=61))
    assert posted_ids(handler) == ["a", "a"] and (list(second.failed), second.not_attempted) == (["a"], ["b"])
    # a's wait has doubled (120 s from its second attempt); b was never tried, so it is due now.
    third = deliver([], AlertLedger(path), hook, now=T0 + timedelta(seconds=62))
    assert third.posted == ["b"]
    fourth = deliver([], AlertLedger(path), hook, now=T0 + timedelta(seconds=61 + 121))
    assert fourth.posted == ["a"]

    assert posted_ids(handler) == ["a", "a", "b", "a"]
    assert deliver([make_alert("a"), make_alert("b")], AlertLedger(path), hook, now=T0 + timedelta(days=1)).posted == []
    assert posted_ids(handler) == ["a", "a", "b", "a"]  # nothing accepted is posted again
    assert AlertLedger(path).pending(hook) == []
    outcomes = [(line["alert_id"], line["webhook"].split(":")[0], line["attempts"]) for line in AlertLedger(path).read()]
    assert outcomes == [("a", "failed", 1), ("b", "not attempted", 0), ("a", "failed", 2), ("b", "sent", 1), ("a", "sent", 3)]


def test_retries_stop_at_the_cap(flaky_receiver, tmp_path):
    url, handler = flaky_receiver
    handler.failures_left = 100
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    hook = WebhookTarget(url, max_attempts=3, retry_after_seconds=0)
    reports = [deliver([make_alert("a")], ledger, hook, now=T0 + timedelta(seconds=i)) for i in range(5)]
    assert [r.gave_up for r in reports] == [[], [], ["a"], [], []]
    assert posted_ids(handler) == ["a", "a", "a"]
    assert ledger.pending(hook) == []


def test_a_retried_alert_is_posted_with_its_original_content(flaky_receiver, tmp_path):
    url, handler = flaky_receiver
    handler.failures_left = 1
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    hook = WebhookTarget(url, retry_after_seconds=0)
    alert = make_alert("a", metadata={"checked": 3})
    deliver([alert], ledger, hook, now=T0)
    deliver([], ledger, hook, now=T0 + timedelta(seconds=1))
    assert handler.bodies[0] == handler.bodies[1] == webhook_payload(alert.as_record(), alert_text(alert))


def test_ledger_lines_of_the_earlier_at_most_once_version_are_not_retried(flaky_receiver, tmp_path):
    url, handler = flaky_receiver
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    ledger.append({**make_alert("old").as_record(), "text": "x", "webhook": "failed: webhook answered HTTP 500"})
    assert deliver([], ledger, WebhookTarget(url, retry_after_seconds=0), now=T0).posted == []
    assert handler.bodies == []


class RedirectingReceiver(BaseHTTPRequestHandler):
    """Answers every POST with a 302 to /moved, where a GET gets 200: urllib's default
    handling turns the POST into a bodiless GET and reports success."""

    gets: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(302)
        self.send_header("Location", "/moved")
        self.end_headers()

    def do_GET(self):
        type(self).gets.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_is_not_sent(tmp_path):
    RedirectingReceiver.gets = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RedirectingReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with pytest.raises(WebhookError, match="HTTP 302, a redirect"):
            post_webhook(WebhookTarget(url), {"text": "x"})
        ledger = AlertLedger(tmp_path / "alerts.jsonl")
        report = deliver([make_alert("a")], ledger, WebhookTarget(url), now=T0)
        assert report.posted == [] and report.failed["a"].startswith("failed: webhook answered HTTP 302")
        assert ledger.pending(WebhookTarget(url)) != []  # still to be delivered
        assert RedirectingReceiver.gets == []  # the redirect was not followed
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com/services/T000/B000/SECRET",  # no scheme
        "http://hooks.example.com:SECRET/services",  # port is not a number
        "http://hooks.example.com/services/SECRET token",  # a space
        "https:///services/SECRET",  # no host
    ],
)
def test_a_malformed_url_gives_a_clear_error_that_does_not_quote_it(url, tmp_path):
    with pytest.raises(WebhookError, match="webhook URL is malformed") as raised:
        post_webhook(WebhookTarget(url), {"text": "x"})
    assert "SECRET" not in "".join(traceback.format_exception(raised.value))
    assert "SECRET" not in repr(WebhookTarget(url))
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    report = deliver([make_alert("a")], ledger, WebhookTarget(url), now=T0)
    assert report.failed["a"].startswith("failed: webhook URL is malformed")
    assert "SECRET" not in ledger.path.read_text()


def test_run_error_text_names_each_failed_step_once_and_stays_short():
    from pinlanding_assets.core.alerts import ERROR_TEXT_LIMIT, run_error_text

    message = 'Execution of run for "shard_ingest" failed. Steps failed: [\'raw_attributes\'].'
    disk_full = "OSError: [Errno 28] No space left on device"
    # Dagster copies the first failed step's error into the run's: it is said once.
    assert run_error_text(message, disk_full, {"raw_attributes": disk_full}) == f"{message}; step raw_attributes: {disk_full}"
    # A run whose process died has only its message.
    assert run_error_text("Run worker process exited unexpectedly\n(signal 9)", None, {}) == "Run worker process exited unexpectedly (signal 9)"
    long = run_error_text(message, None, {f"step_{i}": "ValueError: " + "x" * 200 for i in range(20)})
    assert len(long) == ERROR_TEXT_LIMIT and long.endswith("…")
