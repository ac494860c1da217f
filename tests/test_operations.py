"""Operations: a failed run alerts (webhook), alerts carry no personal data nor secrets, and the
retry condition of network steps retries connections, never user errors."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

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
    state = nightly_dunning(
        as_of=date(2026, 3, 31),
        source=str(tmp_path / "no-such-folder"),
        db=str(tmp_path / "r.duckdb"),
        return_state=True,
    )
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
            sent.append(
                {
                    "path": self.path,
                    "auth": self.headers["Authorization"],
                    "json": json.loads(self.rfile.read(int(self.headers["Content-Length"]))),
                }
            )
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
        run = SimpleNamespace(
            id="r1", name="nightly-2026-03-31", parameters={"as_of": "2026-03-31"}, deployment_id=None
        )
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

    from relance.core.errors import DatabaseBusy, SourceError
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


# --- make stop (scripts/stop.sh) ----------------------------------------------------------------
# Stand-ins for the processes make serve starts: a script called `prefect`, run as
# `prefect worker start` / `prefect server start` (what stop.sh checks the pid belongs to). On
# SIGTERM it writes the time to <what>.term, lingers for LINGER seconds (a worker finishing what it
# does) or ignores the signal (IGNORE_TERM), then writes <what>.exit. With FLOW_RUN_S, the worker
# starts a child `prefect flow-run` that runs that many seconds (a flow run in progress).
FAKE_PREFECT = r"""
import os, signal, subprocess, sys, time
what, home = sys.argv[1], os.environ["FAKE_HOME"]
def stamp(name):
    with open(os.path.join(home, f"{what}.{name}"), "w") as f:
        f.write(repr(time.time()))
if what == "flow-run":
    time.sleep(float(os.environ["FLOW_RUN_S"]))
    stamp("exit")
    sys.exit(0)
if what == "worker" and os.environ.get("FLOW_RUN_S"):
    subprocess.Popen([sys.executable, __file__, "flow-run", "execute"])
def on_term(*_):
    stamp("term")
    if os.environ.get("IGNORE_TERM") == what:
        return
    time.sleep(float(os.environ.get("LINGER_" + what, "0")))
    stamp("exit")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
stamp("ready")
while True:
    time.sleep(0.05)
"""

STOP = Path(__file__).resolve().parent.parent / "scripts" / "stop.sh"


@pytest.fixture
def fake_serve(tmp_path):
    """Starts fake worker and server processes recorded in PREFECT_HOME's pid files."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "bin" / "prefect"
    script.parent.mkdir()
    script.write_text(FAKE_PREFECT)
    home = tmp_path / "prefect-home"
    home.mkdir()
    procs: dict[str, subprocess.Popen] = {}

    def start(**env):
        for what in ("worker", "server"):
            procs[what] = subprocess.Popen(
                [sys.executable, str(script), what, "start"],
                start_new_session=True,
                env=os.environ | env | {"FAKE_HOME": str(home)},
            )
            (home / f"{what}.pid").write_text(f"{procs[what].pid}\n")
        deadline = time.monotonic() + 30
        while not all((home / f"{w}.ready").exists() for w in procs):
            assert time.monotonic() < deadline, "the fake processes did not start"
            time.sleep(0.05)
        return home, procs

    yield start
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _stop(home, timeout_s):
    import os
    import subprocess

    return subprocess.run(
        ["bash", str(STOP)],
        env=os.environ | {"PREFECT_HOME": str(home), "RELANCE_STOP_TIMEOUT_S": str(timeout_s)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_stop_waits_for_the_worker_before_stopping_the_server(fake_serve):
    home, procs = fake_serve(LINGER_worker="1.5")
    done = _stop(home, timeout_s=10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert procs["worker"].wait(timeout=5) == 0 and procs["server"].wait(timeout=5) == 0
    # the server was asked to stop only once the worker had exited
    assert float((home / "worker.exit").read_text()) <= float((home / "server.term").read_text())
    assert not (home / "worker.pid").exists() and not (home / "server.pid").exists()
    assert "worker: stopped" in done.stdout and "server: stopped" in done.stdout
    again = _stop(home, timeout_s=10)  # a second make stop is harmless
    assert again.returncode == 0 and "worker: not running" in again.stdout and "server: not running" in again.stdout


def test_make_stop_kills_a_worker_that_ignores_sigterm(fake_serve):
    home, procs = fake_serve(IGNORE_TERM="worker")
    done = _stop(home, timeout_s=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert procs["worker"].wait(timeout=5) == -9  # SIGKILL after the grace time
    assert (home / "worker.term").exists() and not (home / "worker.exit").exists()
    assert "sending SIGKILL" in done.stdout and "worker: killed" in done.stdout
    assert procs["server"].wait(timeout=5) == 0 and not list(home.glob("*.pid"))


def test_make_stop_keeps_off_a_pid_that_is_not_its_process(fake_serve, tmp_path):
    import subprocess

    home, procs = fake_serve()
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (home / "worker.pid").write_text(f"{other.pid}\n")  # a pid reused by another program
        procs["worker"].kill()
        done = _stop(home, timeout_s=5)
        assert other.poll() is None, "stop.sh killed a process that is not the worker"
        assert f"pid {other.pid} is no longer the Prefect worker" in done.stdout
        assert done.returncode == 0 and procs["server"].wait(timeout=5) == 0
    finally:
        other.kill()
        other.wait()


def test_make_stop_lets_a_flow_run_finish_before_stopping_the_server(fake_serve):
    """The worker is stopped (killed: it ignores SIGTERM, as Prefect 3.8.8's does), the flow run it
    had started is not: the server is stopped once that run has finished."""
    home, procs = fake_serve(IGNORE_TERM="worker", FLOW_RUN_S="4.5")
    done = _stop(home, timeout_s=3)  # the worker is killed after 3 s, the run ends 1.5 s later
    assert done.returncode == 0, done.stdout + done.stderr
    assert procs["worker"].wait(timeout=5) == -9 and procs["server"].wait(timeout=5) == 0
    assert float((home / "flow-run.exit").read_text()) <= float((home / "server.term").read_text())
    assert "flow runs: finished" in done.stdout and not list(home.glob("*.pid"))


def test_make_stop_leaves_the_server_up_for_a_long_flow_run(fake_serve):
    import time

    home, procs = fake_serve(FLOW_RUN_S="4")
    done = _stop(home, timeout_s=1)
    assert done.returncode == 1
    assert "relance: error: flow run still running" in done.stderr and "run make stop again later" in done.stderr
    assert procs["worker"].wait(timeout=5) == 0 and procs["server"].poll() is None
    assert (home / "server.pid").exists() and (home / "flow-runs.pid").exists()
    deadline = time.monotonic() + 30
    while not (home / "flow-run.exit").exists():  # the run finishes on its own
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = _stop(home, timeout_s=5)
    assert again.returncode == 0, again.stdout + again.stderr
    assert procs["server"].wait(timeout=5) == 0 and not list(home.glob("*.pid"))
