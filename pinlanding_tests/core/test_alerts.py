"""Alert formatting, the JSON-lines ledger and webhook delivery (no Dagster)."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pinlanding_assets.core.alerts import AlertLedger, CheckAlert, WebhookError, WebhookTarget, alert_text, deliver, post_webhook, webhook_payload


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
    payload = webhook_payload(make_alert(value=float("nan"), metadata={"checked": 12, "worst": float("inf")}))
    decoded = json.loads(json.dumps(payload, allow_nan=False))  # strict JSON: no NaN tokens
    assert decoded["text"].startswith("[WARN] raw_attributes.attribute_coverage failed")
    assert decoded["alert"]["value"] is None
    assert decoded["alert"]["metadata"] == {"checked": 12, "worst": None}
    assert decoded["alert"]["partition"] == "apparel"


def test_ledger_appends_one_line_per_new_alert_and_skips_known_ids(tmp_path):
    ledger = AlertLedger(tmp_path / "alerts" / "check_alerts.jsonl")
    first = deliver([make_alert("a"), make_alert("b")], ledger)
    assert [a.alert_id for a in first.delivered] == ["a", "b"]
    second = deliver([make_alert("b"), make_alert("c")], ledger)
    assert [a.alert_id for a in second.delivered] == ["c"]
    assert second.already_sent == ["b"]
    lines = ledger.path.read_text().splitlines()
    assert [json.loads(line)["alert_id"] for line in lines] == ["a", "b", "c"]
    assert json.loads(lines[0])["webhook"] == "not configured"


def test_ledger_survives_a_torn_last_line(tmp_path):
    ledger = AlertLedger(tmp_path / "alerts.jsonl")
    deliver([make_alert("a")], ledger)
    with ledger.path.open("a") as handle:
        handle.write('{"alert_id": "b", "as')  # crash mid-write
    assert ledger.sent_ids() == {"a"}
    assert [a.alert_id for a in deliver([make_alert("a"), make_alert("b")], ledger).delivered] == ["b"]


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
    assert set(report.webhook_failures) == {"a", "b"}
