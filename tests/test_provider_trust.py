"""Providers are trusted only for what they prove (issue 11 §3), against loopback servers that
stand for a misconfigured RELANCE_SENDGRID_HOST / RELANCE_SMS_BASE_URL:
* a redirect is never followed: the second server (tests.fakes.loopback.Catcher, which would
  answer like a success) never sees a request, let alone the credentials; the delivery is
  `failed` with the redirect's target in its reason;
* `sent` only on the documented success shape (SendGrid: 202 with X-Message-Id; the SMS API: a
  2xx JSON message with a sid): a `200 text/html` page, a 202 without X-Message-Id, JSON without
  a sid are `in_doubt` (something answered "OK": the message may have been taken) with the reason;
* after such an answer the rest of the batch is not attempted (stays `planned`, the run says why),
  and a re-run never sends a `failed` or `in_doubt` delivery again.
Concurrency 1, so which delivery meets the bad answer first is deterministic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest

from tasks.dispatch import dispatch
from tests.fakes.loopback import Catcher
from tests.fakes.scenario import action, build, channels_config, customer, deliveries, invoice
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.twilio_server import FakeTwilio

AS_OF = date(2026, 3, 16)  # a Monday
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # 10:00 in Paris: SMS may go
NGINX = (
    b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>"
)


@pytest.fixture
def catcher():
    with Catcher() as fake:
        yield fake


@pytest.fixture
def sendgrid(monkeypatch):
    with FakeSendGrid() as fake:
        monkeypatch.setenv("RELANCE_SENDGRID_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def twilio(monkeypatch):
    with FakeTwilio() as fake:
        monkeypatch.setenv("RELANCE_SMS_BASE_URL", fake.url)
        monkeypatch.setenv("RELANCE_SMS_ACCOUNT_SID", fake.account_sid)
        monkeypatch.setenv("RELANCE_SMS_AUTH_TOKEN", fake.auth_token)
        monkeypatch.setenv("SENDGRID_API_KEY", "unused")
        yield fake


def _db(tmp_path, channel: str):
    customers = [customer(f"C{i}", phone=f"+3363998000{i}") for i in (1, 2)]
    invoices = [invoice(f"F{i}", f"C{i}", "2026-01-05", "2026-02-04", "10.00") for i in (1, 2)]
    actions = [action(f"A{i}", f"C{i}", "reminder_2", [f"F{i}"], deliveries=[(f"D{i}", channel)]) for i in (1, 2)]
    return build(tmp_path, customers=customers, invoices=invoices, as_of=AS_OF, actions=actions)


def _email_cfg(tmp_path, **kw):
    return channels_config(
        tmp_path, email={"concurrency": 1, "max_attempts": 2, "backoff_base_seconds": 0.01, "timeout_seconds": 2, **kw}
    )


def _sms_cfg(tmp_path):
    return channels_config(tmp_path, sms={"concurrency": 1, "max_attempts": 2, "backoff_base_seconds": 0.01})


def _run(db, tmp_path, cfg):
    return dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)


def _per_delivery(fake) -> Counter:
    return Counter(d for _, _, d in fake.requests)


# -- SendGrid --------------------------------------------------------------------------------------


def test_sendgrid_redirect_is_not_followed_and_the_key_stays_home(tmp_path, sendgrid, catcher):
    db = _db(tmp_path, "email")
    cfg = _email_cfg(tmp_path)
    sendgrid.redirect_to(f"{catcher.url}/v3/mail/send")
    summary = _run(db, tmp_path, cfg)
    assert catcher.seen == [] and catcher.authorizations() == []
    rows = deliveries(db)
    assert rows["D1"]["status"] == "failed" and rows["D1"]["provider_message_id"] is None
    reason = rows["D1"]["last_error"]
    assert reason.startswith(f"not sent: {sendgrid.url} answered 302, a redirect to {catcher.url};")
    assert "never followed" in reason and "RELANCE_SENDGRID_HOST" in reason and sendgrid.api_key not in reason
    # the rest of the batch is not attempted: the host is wrong for all of them
    assert rows["D2"]["status"] == "planned" and rows["D2"]["last_error"].startswith("not attempted: ")
    assert _per_delivery(sendgrid) == {"D1": 1}
    assert any("SendGrid host redirects" in e for e in summary["errors"])
    assert summary["by_channel"]["email"] == {"failed": 1, "planned": 1}

    _run(db, tmp_path, cfg)  # a re-run tries D2 (never attempted), never D1 again
    assert _per_delivery(sendgrid) == {"D1": 1, "D2": 1}
    assert {r["status"] for r in deliveries(db).values()} == {"failed"}
    assert catcher.seen == []


@pytest.mark.parametrize(
    "answer, shape",
    [
        ((200, {"Content-Type": "text/html"}, NGINX), "200 text/html without X-Message-Id"),
        ((202, {"Content-Type": "application/json"}, b""), "202 application/json without X-Message-Id"),
    ],
)
def test_sendgrid_answer_of_the_wrong_shape_is_in_doubt(tmp_path, sendgrid, answer, shape):
    db = _db(tmp_path, "email")
    cfg = _email_cfg(tmp_path)
    sendgrid.answer_with(*answer)
    summary = _run(db, tmp_path, cfg)
    rows = deliveries(db)
    assert rows["D1"]["status"] == "in_doubt" and rows["D1"]["provider"] == "sendgrid"
    assert rows["D1"]["provider_message_id"] is None and rows["D1"]["sent_at"] is None
    assert rows["D1"]["last_error"].startswith(
        f"in doubt: {sendgrid.url} answered {shape}, not SendGrid's 202 with an X-Message-Id (sandbox mode is off)"
    )
    assert "relance resolve" in rows["D1"]["last_error"]
    assert rows["D2"]["status"] == "planned" and rows["D2"]["last_error"].startswith("not attempted: ")
    assert any("does not answer like SendGrid" in e for e in summary["errors"])

    again = _run(db, tmp_path, cfg)  # D1 waits for relance resolve; D2 meets the same answer
    assert again["in_doubt"]["ids"] == ["D1"]
    assert _per_delivery(sendgrid) == {"D1": 1, "D2": 1}
    assert {r["status"] for r in deliveries(db).values()} == {"in_doubt"}
    _run(db, tmp_path, cfg)
    assert _per_delivery(sendgrid) == {"D1": 1, "D2": 1}


def test_sandbox_mode_is_sent_only_when_sandbox_is_on(tmp_path, sendgrid):
    """A 200 is SendGrid's sandbox answer, so it means `sent` only with sandbox mode on."""
    db = _db(tmp_path, "email")
    sendgrid.answer_with(200, {"Content-Type": "application/json"}, b"")
    _run(db, tmp_path, _email_cfg(tmp_path))
    assert deliveries(db)["D1"]["status"] == "in_doubt"
    sendgrid.canned = None
    db2 = _db(tmp_path / "b", "email")
    _run(db2, tmp_path, _email_cfg(tmp_path, sandbox=True))
    assert {(r["status"], r["provider"]) for r in deliveries(db2).values()} == {("sent", "sendgrid-sandbox")}


def test_the_alert_email_does_not_follow_a_redirect_either(sendgrid, catcher, monkeypatch):
    from python_http_client.exceptions import HTTPError

    from tasks.alerts import _send_email

    monkeypatch.setenv("RELANCE_ALERT_FROM", "ops@relance.example")
    sendgrid.redirect_to(f"{catcher.url}/v3/mail/send")
    with pytest.raises(HTTPError) as excinfo:
        _send_email("ops@relance.example", {"flow": "nightly", "flow_run_name": "x", "state": "Failed"})
    assert excinfo.value.status_code == 302 and catcher.seen == []


# -- the SMS gateway -------------------------------------------------------------------------------


def test_sms_redirect_is_not_followed(tmp_path, twilio, catcher):
    db = _db(tmp_path, "sms")
    cfg = _sms_cfg(tmp_path)
    twilio.redirect_to(f"{catcher.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json")
    summary = _run(db, tmp_path, cfg)
    assert catcher.seen == []
    rows = deliveries(db)
    assert rows["D1"]["status"] == "failed" and rows["D1"]["provider_message_id"] is None
    assert rows["D1"]["last_error"].startswith(f"not sent: {twilio.url} answered 302, a redirect to {catcher.url};")
    assert "RELANCE_SMS_BASE_URL" in rows["D1"]["last_error"]
    assert rows["D2"]["status"] == "planned" and rows["D2"]["last_error"].startswith("not attempted: ")
    assert any("the SMS gateway redirects" in e for e in summary["errors"])
    _run(db, tmp_path, cfg)
    assert _per_delivery(twilio) == {"+33639980001": 1, "+33639980002": 1}
    assert {r["status"] for r in deliveries(db).values()} == {"failed"} and catcher.seen == []


@pytest.mark.parametrize(
    "answer, shape",
    [
        ((200, {"Content-Type": "text/html"}, NGINX), "200 text/html"),
        (
            (201, {"Content-Type": "application/json"}, b'{"status": "queued"}'),
            "201 application/json, JSON without a message sid",
        ),
    ],
)
def test_sms_answer_of_the_wrong_shape_is_in_doubt(tmp_path, twilio, answer, shape):
    db = _db(tmp_path, "sms")
    cfg = _sms_cfg(tmp_path)
    twilio.answer_with(*answer)
    summary = _run(db, tmp_path, cfg)
    rows = deliveries(db)
    assert rows["D1"]["status"] == "in_doubt" and rows["D1"]["provider_message_id"] is None
    assert rows["D1"]["last_error"].startswith(f"in doubt: {twilio.url} answered {shape}, not a message with its sid")
    assert rows["D2"]["status"] == "planned" and rows["D2"]["last_error"].startswith("not attempted: ")
    assert any("does not answer like the SMS API" in e for e in summary["errors"])
    again = _run(db, tmp_path, cfg)
    assert again["in_doubt"]["ids"] == ["D1"]
    _run(db, tmp_path, cfg)
    assert _per_delivery(twilio) == {"+33639980001": 1, "+33639980002": 1}
    assert {r["status"] for r in deliveries(db).values()} == {"in_doubt"}
