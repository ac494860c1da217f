"""Operations: a failed run alerts (webhook), alerts carry no personal data nor secrets, and the
retry condition of network steps retries connections, never user errors."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "json": json.loads(body), "type": self.headers["Content-Type"]})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/relance", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_nightly_run_posts_the_alert_webhook(prefect_server, webhook, tmp_path, monkeypatch):
    from flows.nightly import nightly_dunning

    url, received = webhook
    monkeypatch.setenv("RELANCE_ALERT_WEBHOOK", url)
    monkeypatch.delenv("RELANCE_ALERT_EMAIL", raising=False)
    state = nightly_dunning(as_of=date(2026, 3, 31), source=str(tmp_path / "no-such-folder"),
                            db=str(tmp_path / "r.duckdb"), return_state=True)
    assert state.is_failed()
    assert len(received) == 1, received
    got = received[0]
    assert got["path"] == "/hooks/relance" and got["type"] == "application/json"
    alert = got["json"]
    assert alert["event"] == "relance.run.failed" and alert["flow"] == "nightly_dunning"
    assert alert["flow_run_id"] == str(state.state_details.flow_run_id)
    assert alert["flow_run_name"] == "nightly-2026-03-31" and alert["as_of"] == "2026-03-31"
    assert alert["state"] == "Failed" and "does not exist" in alert["message"]
    assert "relance" in alert["text"]


def test_alert_messages_lose_addresses_and_credentials():
    from tasks.alerts import scrub

    text = scrub("email address 'jean@garage.example' refused; postgresql://app:s3cret@db/x; api_key=SG.abc token: xyz")
    assert "jean@garage.example" not in text and "s3cret" not in text and "SG.abc" not in text and "xyz" not in text
    assert len(scrub("x" * 2000)) <= 501


def test_no_alert_configured_is_a_warning_not_an_error(monkeypatch):
    from types import SimpleNamespace

    from tasks.alerts import alert

    monkeypatch.delenv("RELANCE_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("RELANCE_ALERT_EMAIL", raising=False)
    run = SimpleNamespace(id="r1", name="nightly-2026-03-31", parameters={"as_of": "2026-03-31"}, deployment_id=None)
    assert alert(SimpleNamespace(name="nightly_dunning"), run, SimpleNamespace(name="Failed", message="boom")) == {}


def test_alert_email_goes_through_sendgrid(monkeypatch):
    """RELANCE_ALERT_EMAIL: one SendGrid v3 mail/send request (host from RELANCE_SENDGRID_HOST)."""
    from types import SimpleNamespace

    from tasks.alerts import alert

    sent: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            sent.append({"path": self.path, "auth": self.headers["Authorization"],
                         "json": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("RELANCE_ALERT_WEBHOOK", raising=False)
        monkeypatch.setenv("RELANCE_ALERT_EMAIL", "ops@relance.example")
        monkeypatch.setenv("RELANCE_ALERT_FROM", "relance@relance.example")
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.test-key")
        monkeypatch.setenv("RELANCE_SENDGRID_HOST", f"http://127.0.0.1:{server.server_port}")
        run = SimpleNamespace(id="r1", name="nightly-2026-03-31", parameters={"as_of": "2026-03-31"}, deployment_id=None)
        done = alert(SimpleNamespace(name="nightly_dunning"), run, SimpleNamespace(name="Crashed", message="killed"))
    finally:
        server.shutdown()
        server.server_close()
    assert done == {"email": 202}
    [req] = sent
    assert req["path"] == "/v3/mail/send" and req["auth"] == "Bearer SG.test-key"
    assert req["json"]["personalizations"][0]["to"] == [{"email": "ops@relance.example"}]
    assert "nightly-2026-03-31" in req["json"]["subject"] and "SG.test-key" not in json.dumps(req["json"])


def test_network_steps_retry_connections_never_user_errors():
    from prefect.states import Failed

    from relance.errors import DatabaseBusy, SourceError
    from tasks.ingest import ingest
    from tasks.step import transient_failure

    def failed(exc):
        return Failed(data=exc)

    assert transient_failure(None, None, failed(ConnectionRefusedError("refused")))
    assert transient_failure(None, None, failed(SourceError("https://x: the request cannot be made (ConnectTimeout)")))
    assert not transient_failure(None, None, failed(SourceError("folder x does not exist")))
    assert not transient_failure(None, None, failed(DatabaseBusy("database in use")))
    assert ingest.task.retries == 2
    from tasks.dispatch import dispatch, dispatch_batch

    assert dispatch.task.retries == 0 and dispatch_batch.task.retries == 0  # never resend
