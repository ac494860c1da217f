"""Email through the official `sendgrid` client, against a SendGrid-compatible server on loopback
(tests/fakes/sendgrid_server.py): the v3 request, retries of 429/5xx honouring the rate-limit
reset, refusals, the key refused, timeouts, sandbox mode — and a crash between SendGrid's
acceptance and our record, after which nothing is sent twice."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, date, datetime

import duckdb
import pytest

from tasks.dispatch import dispatch, ledger, resolve
from tests.fakes.scenario import action, build, channels_config, customer, deliveries, invoice
from tests.fakes.sendgrid_server import FakeSendGrid

AS_OF = date(2026, 3, 16)
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


@pytest.fixture
def sendgrid(monkeypatch):
    with FakeSendGrid() as fake:
        monkeypatch.setenv("RELANCE_SENDGRID_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def cfg(tmp_path):
    return channels_config(
        tmp_path,
        email={
            "max_attempts": 4,
            "backoff_base_seconds": 0.01,
            "max_backoff_seconds": 2,
            "concurrency": 4,
            "timeout_seconds": 2,
        },
    )


def many(tmp_path, n: int, *, extra_customers=(), extra_actions=(), **kw):
    customers = [customer(f"C{i:03d}", f"Client {i}", language="en" if i % 3 == 0 else "fr") for i in range(n)]
    invoices = [invoice(f"F{i:03d}", f"C{i:03d}", "2026-01-05", "2026-02-04", f"{100 + i}.50") for i in range(n)]
    actions = [
        action(f"A{i:03d}", f"C{i:03d}", "reminder_2", [f"F{i:03d}"], deliveries=[(f"D{i:03d}", "email")])
        for i in range(n)
    ]
    return build(
        tmp_path,
        customers=customers + list(extra_customers),
        invoices=invoices,
        as_of=AS_OF,
        actions=actions + list(extra_actions),
        **kw,
    )


def test_each_email_is_a_valid_v3_request(tmp_path, sendgrid, cfg):
    db = build(
        tmp_path,
        customers=[
            customer("C1", "Boulangerie Martin SARL", email="compta@martin.example"),
            customer("C2", "Acme Ltd", language="en", email="ap@acme.example"),
        ],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "1234.56"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "99.00"),
        ],
        as_of=AS_OF,
        with_charges_table=True,
        actions=[
            action(
                "A1",
                "C1",
                "formal_notice",
                ["F1"],
                deliveries=[
                    ("D1-reg", "registered_letter", "pending_approval"),
                    ("D1-mail", "email", "pending_approval"),
                ],
                charges={"per_invoice": {"F1": ("16.44", "40.00")}},
            ),
            action("A2", "C2", "reminder_2", ["F2"], deliveries=[("D2-mail", "email")]),
        ],
    )
    summary = dispatch(
        str(db), AS_OF, str(tmp_path / "out"), send=True, auto_approve=True, now=NOW, channels_config=cfg
    )
    assert summary["mode"] == "send" and summary["by_channel"]["email"] == {"sent": 2}
    assert sorted(sendgrid.delivery_ids()) == ["D1-mail", "D2-mail"]
    by_id = {a.body["custom_args"]["delivery_id"]: a for a in sendgrid.accepted}
    notice = by_id["D1-mail"]
    body = notice.body
    assert notice.headers["Authorization"] == f"Bearer {sendgrid.api_key}"
    assert body["personalizations"][0]["to"] == [{"email": "compta@martin.example", "name": "Boulangerie Martin SARL"}]
    assert body["from"]["email"] == "recouvrement@relance.example"
    assert body["custom_args"] == {"delivery_id": "D1-mail", "action_id": "A1"}
    assert body["categories"] == ["formal_notice"]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["subject"].startswith("Mise en demeure de payer")
    (attachment,) = body["attachments"]
    assert attachment["type"] == "application/pdf" and base64.b64decode(attachment["content"]).startswith(b"%PDF")
    assert "attachments" not in by_id["D2-mail"].body and by_id["D2-mail"].body["categories"] == ["reminder_2"]
    rows = deliveries(db)
    assert rows["D1-mail"]["provider"] == "sendgrid" and rows["D1-mail"]["provider_message_id"] == notice.message_id
    assert rows["D1-mail"]["artifact_path"].endswith(
        f"{ledger.file_stem('D1-mail')}.eml"
    )  # the evidence copy of what went
    assert rows["D1-reg"]["provider"] == "print"


def test_429_waits_for_the_rate_limit_reset_then_sends_once(tmp_path, sendgrid, cfg):
    db = many(tmp_path, 3)
    sendgrid.fail_next(2, status=429, reset_in=1.5)  # X-RateLimit-Reset = now + 1.5 s, in whole seconds
    dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert sorted(sendgrid.delivery_ids()) == ["D000", "D001", "D002"]
    statuses = [s for _, s, _ in sendgrid.requests]
    assert statuses.count(429) == 2 and statuses.count(202) == 3
    by_delivery: dict[str, list] = {}
    for t, s, d in sendgrid.requests:
        by_delivery.setdefault(d, []).append((t, s))
    limited = [v for v in by_delivery.values() if v[0][1] == 429]
    assert len(limited) == 2
    for (t429, _), (t202, s202) in limited:
        # the retry waited for the reset (≥ 0.5 s), not for the 10 ms back-off
        assert s202 == 202 and t202 - t429 >= 0.45
    assert {r["status"] for r in deliveries(db).values()} == {"sent"}


def test_5xx_is_retried_and_gives_up_as_failed(tmp_path, sendgrid, cfg):
    db = many(tmp_path, 2)
    sendgrid.fail_next(2, status=500)
    dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert {r["status"] for r in deliveries(db).values()} == {"sent"}
    db2 = many(tmp_path / "b", 1)
    sendgrid.fail_next(10, status=503)
    dispatch(str(db2), AS_OF, str(tmp_path / "out2"), send=True, now=NOW, channels_config=cfg)
    row = deliveries(db2)["D000"]
    assert row["status"] == "failed" and "gave up after 4 attempts" in row["last_error"] and "503" in row["last_error"]


def test_other_4xx_fail_with_sendgrids_reason(tmp_path, sendgrid, cfg):
    db = many(tmp_path, 2)
    sendgrid.refuse_recipient("c001@client.example")
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    rows = deliveries(db)
    assert rows["D000"]["status"] == "sent"
    assert rows["D001"]["status"] == "failed"
    assert rows["D001"]["last_error"].startswith("SendGrid 400")
    assert (
        "personalizations.0.to.0.email: The recipient c001@client.example is on the bounce list."
        in rows["D001"]["last_error"]
    )
    assert summary["by_channel"]["email"] == {"sent": 1, "failed": 1}


def test_a_refused_key_sends_nothing_and_keeps_them_planned(tmp_path, sendgrid, cfg, monkeypatch):
    db = many(tmp_path, 20)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert sendgrid.accepted == [] and len(sendgrid.requests) <= 4  # one chunk in flight, then it stops
    assert {r["status"] for r in deliveries(db).values()} == {"planned"}
    assert any("refused the API key" in e for e in summary["errors"])


def test_invalid_address_never_reaches_sendgrid(tmp_path, sendgrid, cfg):
    db = build(
        tmp_path,
        customers=[customer("C1", email="jean..dupont@client.example")],
        invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "10.00")],
        as_of=AS_OF,
        actions=[action("A1", "C1", "reminder_2", ["F1"], deliveries=[("D1", "email")])],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert sendgrid.requests == []
    row = deliveries(db)["D1"]
    assert row["channel"] == "letter" and row["status"] == "sent" and row["provider"] == "print"


def test_no_answer_in_time_is_in_doubt_not_resent(tmp_path, sendgrid, cfg):
    db = many(tmp_path, 1)
    sendgrid.delay = 3  # the request is accepted, but after our 2 s timeout
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert deliveries(db)["D000"]["status"] == "in_doubt" and summary["by_channel"]["email"] == {"in_doubt": 1}
    sendgrid.delay = 0
    again = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert again["totals"] == {} and again["in_doubt"]["ids"] == ["D000"]
    for _ in range(50):  # the slow first request completes at the server
        if sendgrid.accepted:
            break
        time.sleep(0.1)
    assert [r[2] for r in sendgrid.requests] == ["D000"] and len(sendgrid.accepted) == 1


def test_sandbox_mode(tmp_path, sendgrid):
    cfg = channels_config(tmp_path, email={"sandbox": True})
    db = many(tmp_path, 1)
    dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    row = deliveries(db)["D000"]
    assert row["status"] == "sent" and row["provider"] == "sendgrid-sandbox" and sendgrid.accepted == []


def test_a_crash_after_sendgrid_accepted_leaves_them_in_doubt_and_nothing_is_sent_twice(tmp_path, sendgrid, cfg):
    db = many(tmp_path, 40)  # chunks of concurrency × 4 = 16
    crashed = threading.Event()

    def crash(channel, results):
        if channel == "email" and not crashed.is_set():
            crashed.set()
            raise SystemExit("killed between SendGrid's 202 and the ledger's record")

    ledger.AFTER_PROVIDER_HOOKS.append(crash)
    try:
        with pytest.raises(SystemExit):
            dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    finally:
        ledger.AFTER_PROVIDER_HOOKS.remove(crash)
    rows = deliveries(db)
    first_chunk = sorted(d for d, r in rows.items() if r["status"] == "sending")
    assert len(first_chunk) == 16 and len(sendgrid.accepted) == 16
    assert {r["status"] for d, r in rows.items() if d not in first_chunk} == {"planned"}

    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert summary["in_doubt"]["count"] == 16 and summary["in_doubt"]["new"] == first_chunk
    assert summary["by_channel"]["email"] == {"sent": 24}
    ids = sendgrid.delivery_ids()
    assert len(ids) == 40 and len(set(ids)) == 40  # each delivery exactly once at SendGrid

    again = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert again["totals"] == {} and len(sendgrid.accepted) == 40 and again["in_doubt"]["count"] == 16

    # a person checks SendGrid's activity feed and settles them
    resolve(str(db), first_chunk, sent=True, by="ops", reason="found in the activity feed")
    assert {r["status"] for r in deliveries(db).values()} == {"sent"}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select max(attempts) from deliveries").fetchone()[0] == 1


def test_throughput_against_loopback(tmp_path, sendgrid):
    cfg = channels_config(tmp_path, email={"concurrency": 8})
    db = many(tmp_path, 200)
    summary = dispatch(str(db), AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg, batch_size=100)
    assert summary["by_channel"]["email"] == {"sent": 200} and summary["batches"] == 2
    assert len(set(sendgrid.delivery_ids())) == 200
