"""SMS through a Twilio-compatible API on loopback (tests/fakes/twilio_server.py): the request,
quiet hours and public holidays (deferred, then sent by a later run), refusals and retries."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tasks.dispatch import dispatch
from tasks.dispatch.ledger import file_stem
from tests.fakes.scenario import action, build, channels_config, customer, deliveries, events, invoice
from tests.fakes.twilio_server import FakeTwilio

AS_OF = date(2026, 3, 16)  # a Monday
DAY = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # 10:00 in Paris, 09:00 in London


@pytest.fixture
def twilio(monkeypatch):
    with FakeTwilio() as fake:
        monkeypatch.setenv("RELANCE_SMS_BASE_URL", fake.url)
        monkeypatch.setenv("RELANCE_SMS_ACCOUNT_SID", fake.account_sid)
        monkeypatch.setenv("RELANCE_SMS_AUTH_TOKEN", fake.auth_token)
        monkeypatch.setenv("SENDGRID_API_KEY", "unused")
        yield fake


@pytest.fixture
def db(tmp_path):
    return build(
        tmp_path,
        customers=[
            customer("C1", "Boulangerie Martin SARL", phone="+33639980001"),
            customer("C2", "Acme Ltd", language="en", country="GB", phone="+447700900123"),
            customer("C3", "Numéro Fixe", phone="+3319900123"),
        ],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "1234.56"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "99.00"),
            invoice("F3", "C3", "2026-01-05", "2026-02-04", "10.00"),
        ],
        as_of=AS_OF,
        actions=[
            action("A1", "C1", "reminder_2", ["F1"], deliveries=[("S1", "sms")]),
            action("A2", "C2", "reminder_2", ["F2"], deliveries=[("S2", "sms")]),
        ],
    )


@pytest.fixture
def cfg(tmp_path):
    return channels_config(tmp_path, sms={"backoff_base_seconds": 0.01, "max_attempts": 3})


def test_sms_goes_through_the_gateway(db, tmp_path, twilio, cfg):
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=DAY, channels_config=cfg)
    assert summary["by_channel"]["sms"] == {"sent": 2}
    by_to = {m["to"]: m for m in twilio.accepted}
    fr = by_to["+33639980001"]
    assert fr["from"] == "RELANCE" and fr["num_segments"] == "1"
    assert fr["body"].startswith("Relance Démo SAS : 1 facture impayée (F1), total 1 234,56 €.")
    assert "\u202f" not in fr["body"] and len(fr["body"]) <= 160
    assert by_to["+447700900123"]["body"].startswith("Relance Démo SAS: 1 unpaid invoice (F2), total €99.00.")
    rows = deliveries(db)
    assert rows["S1"]["provider"] == "sms" and rows["S1"]["provider_message_id"] == fr["sid"]
    assert "Encoding: GSM-7" in open(rows["S1"]["artifact_path"], encoding="utf-8").read()


def test_never_at_night_nor_on_sundays_or_holidays(db, tmp_path, twilio, cfg):
    night = datetime(2026, 3, 16, 5, 30, tzinfo=UTC)  # 06:30 in Paris, 05:30 in London
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=night, channels_config=cfg)
    assert twilio.requests == [] and summary["by_channel"]["sms"] == {"deferred": 2}
    rows = deliveries(db)
    assert rows["S1"]["status"] == rows["S2"]["status"] == "planned" and rows["S1"]["attempts"] == 0
    assert "deferred: outside 08:00–20:00 in Europe/Paris (06:30)" in events(db, "S1")[-1]["detail"]
    # Easter Monday 2026 (6 April) is a public holiday in France, not a UK-wide one (country level,
    # as contract §3 reads the holidays package: England's bank holiday is a subdivision's)
    easter_monday = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
    dispatch(str(db), date(2026, 4, 6), str(tmp_path / "out"), send=True, now=easter_monday, channels_config=cfg)
    rows = deliveries(db)
    assert rows["S1"]["status"] == "planned" and "public holiday in FR" in events(db, "S1")[-1]["detail"]
    assert rows["S2"]["status"] == "sent"
    sunday = datetime(2026, 4, 12, 9, 0, tzinfo=UTC)
    dispatch(str(db), date(2026, 4, 12), str(tmp_path / "out"), send=True, now=sunday, channels_config=cfg)
    assert deliveries(db)["S1"]["status"] == "planned"
    tuesday = datetime(2026, 4, 7, 15, 0, tzinfo=UTC)  # the next run in the window sends it
    dispatch(str(db), date(2026, 4, 7), str(tmp_path / "out"), send=True, now=tuesday, channels_config=cfg)
    assert deliveries(db)["S1"]["status"] == "sent" and len(twilio.accepted) == 2


def test_outbox_renders_sms_whatever_the_hour(db, tmp_path):
    night = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), now=night)
    assert summary["by_channel"]["sms"] == {"sent": 2}
    text = (tmp_path / "out" / "2026-03-16" / "sms" / f"{file_stem('S1')}.txt").read_text(encoding="utf-8")
    assert "To: +33639980001" in text and "1 part(s)" in text


def test_gateway_refusals_and_retries(tmp_path, twilio, cfg):
    db = build(
        tmp_path,
        customers=[customer("C1", phone="+33639980001"), customer("C2", phone="+33639980002")],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "10.00"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "10.00"),
        ],
        as_of=AS_OF,
        actions=[
            action("A1", "C1", "reminder_2", ["F1"], deliveries=[("S1", "sms")]),
            action("A2", "C2", "reminder_2", ["F2"], deliveries=[("S2", "sms")]),
        ],
    )
    twilio.fail_next(2, status=429)
    dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=DAY, channels_config=cfg)
    assert {r["status"] for r in deliveries(db).values()} == {"sent"} and len(twilio.accepted) == 2
    # a number the gateway refuses: failed with its code and message
    db2 = build(
        tmp_path / "b",
        customers=[customer("C1", phone="+33639980001")],
        invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "10.00")],
        as_of=AS_OF,
        actions=[action("A1", "C1", "reminder_2", ["F1"], deliveries=[("S9", "sms")])],
    )
    twilio.fail_next(5, status=503, retry_after=0.01)
    dispatch(str(db2), AS_OF, str(tmp_path / "out2"), send=True, now=DAY, channels_config=cfg)
    row = deliveries(db2)["S9"]
    assert row["status"] == "failed" and "gave up after 3 attempts" in row["last_error"] and "503" in row["last_error"]


def test_wrong_credentials_keep_them_planned(db, tmp_path, twilio, cfg, monkeypatch):
    monkeypatch.setenv("RELANCE_SMS_AUTH_TOKEN", "wrong")
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=DAY, channels_config=cfg)
    assert twilio.accepted == [] and {deliveries(db)[d]["status"] for d in ("S1", "S2")} == {"planned"}
    assert any("refused our credentials" in e for e in summary["errors"])
