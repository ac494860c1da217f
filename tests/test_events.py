"""Provider events into the ledger (issue 15 §1): the signed receiver over real loopback HTTP, the
journal, `events apply` / `events import`, delivery_state by precedence, and the letter re-sent
for a bounced email — once."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from datetime import UTC, date, datetime
from urllib.parse import urlencode

import duckdb
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.dispatch.ledger import unit_stem
from tasks.events import (
    SENDGRID_PATH,
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    SMS_PATH,
    TWILIO_SIGNATURE,
    Journal,
    ReceiverConfig,
    apply_journal,
    import_file,
    load_sendgrid_key,
    make_server,
    twilio_signature,
)
from tests.fakes.scenario import action, build, customer, deliveries, invoice

DAY1, DAY2, DAY3 = date(2026, 3, 16), date(2026, 3, 17), date(2026, 3, 18)
SMS_TOKEN = "sms-test-token"


@pytest.fixture
def keys():
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


@pytest.fixture
def receiver(tmp_path, keys):
    _, public_b64 = keys
    cfg = ReceiverConfig(
        Journal(tmp_path / "journal"),
        sendgrid_key=load_sendgrid_key(public_b64),
        sms_token=SMS_TOKEN,
        max_age_s=300,
        max_body=64_000,
    )
    server = make_server("127.0.0.1", 0, cfg)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def sign(private, body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if stamp is None else stamp)
    sig = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(sig).decode(), SENDGRID_TIMESTAMP: stamp}


def post(server, path: str, body: bytes, headers: dict[str, str], conn=None) -> int:
    own = conn is None
    conn = conn or http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    resp.read()
    if own:
        conn.close()
    return resp.status


def sg_event(delivery_id: str | None, event: str, n: int, ts: int = 1_773_000_000, **kw) -> dict:
    e = {
        "email": "c1@client.example",
        "timestamp": ts,
        "event": event,
        "sg_event_id": f"ev-{n}",
        "sg_message_id": f"msg{n}.filter",
        **kw,
    }
    if delivery_id:
        e["delivery_id"] = delivery_id
    return e


def ledger_db(tmp_path, email_status: str = "sent"):
    db = build(
        tmp_path,
        customers=[customer("C1"), customer("C2")],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "100.00"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "50.00"),
        ],
        as_of=DAY1,
        actions=[
            action("A1", "C1", "reminder_2", ["F1"], deliveries=[("A1|email", "email", email_status)]),
            action("A2", "C2", "reminder_2", ["F2"], deliveries=[("A2|email", "email", email_status)]),
        ],
    )
    with duckdb.connect(str(db)) as con:
        con.execute(
            "update deliveries set provider = 'sendgrid', provider_message_id = 'pm-' || action_id, "
            "sent_at = timestamp '2026-03-16 09:00' where status = 'sent'"
        )
    return db


def rows(db, sql):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_signed_batch_lands_in_the_ledger_and_bad_requests_are_refused(tmp_path, keys, receiver):
    private, _ = keys
    db = ledger_db(tmp_path)
    batch = [
        sg_event("A1|email", "processed", 1),
        sg_event("A1|email", "delivered", 2),
        sg_event("NOPE|email", "delivered", 3),
    ]
    body = json.dumps(batch).encode()
    headers = sign(private, body)
    assert post(receiver, SENDGRID_PATH, body, headers) == 200
    # the same request again (a replay inside the window), unsigned, tampered, stale, from the future
    assert post(receiver, SENDGRID_PATH, body, headers) == 403
    assert post(receiver, SENDGRID_PATH, body, {}) == 403
    tampered = body.replace(b"delivered", b"bounce")
    assert post(receiver, SENDGRID_PATH, tampered, sign(private, body)) == 403
    assert post(receiver, SENDGRID_PATH, body, sign(private, body, int(time.time()) - 301)) == 403
    assert post(receiver, SENDGRID_PATH, body, sign(private, body, int(time.time()) + 301)) == 403
    other = ec.generate_private_key(ec.SECP256R1())  # signed, but not by SendGrid's key
    assert post(receiver, SENDGRID_PATH, body, sign(other, body)) == 403
    big = b"[" + b" " * 64_000 + b"]"
    assert post(receiver, SENDGRID_PATH, big, sign(private, big)) == 413
    assert receiver.cfg.accepted == 3  # only the first request was journaled

    result = apply_journal(db, tmp_path / "journal")
    assert result["inserted"] == 2 and result["unmatched_total"] == 1
    assert deliveries(db)["A1|email"]["delivery_state"] == "delivered"
    assert deliveries(db)["A2|email"]["delivery_state"] == "accepted"  # sent, nothing heard yet
    assert rows(db, "select delivery_id, provider_event from unmatched_events") == [("NOPE|email", "delivered")]
    # applying the same journal again changes nothing
    again = apply_journal(db, tmp_path / "journal")
    assert again["inserted"] == 0 and again["unmatched_new"] == 0 and again["unmatched_total"] == 1
    assert rows(db, "select count(*) from delivery_events where event_key is not null") == [(2,)]


def test_state_is_by_precedence_not_arrival_and_duplicates_are_no_ops(tmp_path):
    db = ledger_db(tmp_path)
    saved = tmp_path / "events.json"
    # the bounce arrives before the processed event and a duplicate of it; then a late "delivered"
    saved.write_text(
        json.dumps(
            [
                sg_event("A2|email", "bounce", 10, type="blocked", reason="mailbox full"),
                sg_event("A2|email", "processed", 11, ts=1_772_999_000),
                sg_event("A2|email", "bounce", 10, type="blocked", reason="mailbox full"),
            ]
        )
    )
    first = import_file(db, saved)
    assert first["inserted"] == 2
    saved.write_text(json.dumps([sg_event("A2|email", "delivered", 12, ts=1_773_000_500)]))
    import_file(db, saved)
    # a soft bounce ("blocked") is undelivered, and a later "delivered" does not lower it
    assert deliveries(db)["A2|email"]["delivery_state"] == "undelivered"
    assert rows(db, "select count(*) from contact_flags") == [(0,)]  # a soft bounce marks nothing bad
    assert rows(db, "select count(*) from deliveries where channel = 'letter'") == [(0,)]


def test_unmatched_event_is_matched_once_its_delivery_exists(tmp_path):
    db = ledger_db(tmp_path)
    saved = tmp_path / "events.json"
    saved.write_text(json.dumps([sg_event("A9|email", "delivered", 20)]))
    assert import_file(db, saved)["unmatched_total"] == 1
    with duckdb.connect(str(db)) as con:
        con.execute(
            "insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at) "
            "values ('A9|email', 'A1', 'email', 'sent', 1, now(), now())"
        )
    saved.write_text("[]")
    r = import_file(db, saved)
    assert r["inserted"] == 1 and r["unmatched_total"] == 0
    assert deliveries(db)["A9|email"]["delivery_state"] == "delivered"


def test_hard_bounce_becomes_exactly_one_letter_and_later_emails_fall_back(tmp_path, keys, receiver):
    from tasks.dispatch import dispatch

    private, _ = keys
    db = ledger_db(tmp_path)
    body = json.dumps(
        [
            sg_event("A1|email", "delivered", 30),
            sg_event("A1|email", "bounce", 31, ts=1_773_000_100, type="bounce", reason="550 5.1.1 user unknown"),
        ]
    ).encode()
    assert post(receiver, SENDGRID_PATH, body, sign(private, body)) == 200
    out = tmp_path / "out"
    for day in (DAY2, DAY3):  # two nights: events applied first, then dispatch
        r = apply_journal(db, tmp_path / "journal")
        assert r["letters_planned"] == (1 if day == DAY2 else 0)
        dispatch(str(db), day, str(out), now=datetime(day.year, day.month, day.day, 9, tzinfo=UTC))
    d = deliveries(db)
    assert d["A1|email"]["delivery_state"] == "bounced"
    letters = [x for x in d.values() if x["channel"] == "letter"]
    assert len(letters) == 1
    assert letters[0]["delivery_id"] == "A1|letter" and letters[0]["fallback_from"] == "A1|email"
    assert letters[0]["status"] == "sent"
    assert rows(db, "select customer_id, address, flag from contact_flags") == [("C1", "c1@client.example", "bad")]
    # the customer's next email step falls back to a letter (the address is bad); C2's email goes out
    with duckdb.connect(str(db)) as con:
        for aid, cid in (("A3", "C1"), ("A4", "C2")):
            con.execute(
                "insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank, "
                "amount_due, invoice_ids, status, mode, created_at) values "
                f"(?, ?, ?, 'EUR', 'E', 'call_2', 5, 1, ['F{cid[1]}'], 'planned', 'live', now())",
                [aid, DAY3, cid],
            )
            con.execute(
                "insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at) "
                "values (?, ?, 'email', 'planned', 0, now(), now())",
                [f"{aid}|email", aid],
            )
    dispatch(str(db), DAY3, str(out), now=datetime(2026, 3, 18, 10, tzinfo=UTC))
    d = deliveries(db)
    assert d["A3|email"]["channel"] == "letter" and d["A3|email"]["status"] == "sent"
    assert d["A4|email"]["channel"] == "email" and d["A4|email"]["status"] == "sent"


def test_unsubscribe_stops_preventive_emails_only(tmp_path):
    from tasks.dispatch import dispatch

    db = ledger_db(tmp_path)
    saved = tmp_path / "events.json"
    saved.write_text(json.dumps([sg_event("A1|email", "unsubscribe", 40)]))
    import_file(db, saved)
    with duckdb.connect(str(db)) as con:
        for aid, stage, rank in (("P1", "preventive", 1), ("N1", "formal_notice", 6)):
            con.execute(
                "insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank, "
                "amount_due, invoice_ids, status, mode, created_at) values "
                "(?, ?, 'C1', 'EUR', 'E', ?, ?, 1, ['F1'], 'planned', 'live', now())",
                [aid, DAY2, stage, rank],
            )
            con.execute(
                "insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at) "
                "values (?, ?, 'email', 'planned', 0, now(), now())",
                [f"{aid}|email", aid],
            )
    dispatch(str(db), DAY2, str(tmp_path / "out"), now=datetime(2026, 3, 17, 9, tzinfo=UTC), auto_approve=True)
    d = deliveries(db)
    assert d["P1|email"]["status"] == "skipped" and "unsubscribed" in d["P1|email"]["last_error"]
    assert d["N1|email"]["status"] == "sent" and d["N1|email"]["channel"] == "email"


def test_sms_status_callback_signed_with_the_auth_token(tmp_path, receiver):
    db = ledger_db(tmp_path)
    with duckdb.connect(str(db)) as con:
        con.execute(
            "insert into deliveries (delivery_id, action_id, channel, status, provider, provider_message_id, "
            "attempts, created_at, updated_at) values ('A1|sms', 'A1', 'sms', 'sent', 'sms', 'SM123', 1, now(), now())"
        )
    host, port = receiver.server_address[:2]
    params = {"MessageSid": "SM123", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    body = urlencode(params).encode()
    good = twilio_signature(SMS_TOKEN, f"http://{host}:{port}{SMS_PATH}", params)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(receiver, SMS_PATH, body, {**form, TWILIO_SIGNATURE: good}) == 204
    assert post(receiver, SMS_PATH, body, form) == 403
    assert post(receiver, SMS_PATH, body.replace(b"undelivered", b"delivered"), {**form, TWILIO_SIGNATURE: good}) == 403
    wrong = twilio_signature("not-the-token", f"http://{host}:{port}{SMS_PATH}", params)
    assert post(receiver, SMS_PATH, body, {**form, TWILIO_SIGNATURE: wrong}) == 403
    apply_journal(db, tmp_path / "journal")
    assert deliveries(db)["A1|sms"]["delivery_state"] == "undelivered"


def test_receiver_throughput(tmp_path, keys, receiver, capsys):
    """2,000 events in batches of 100 over one keep-alive loopback connection; prints events/s."""
    private, _ = keys
    conn = http.client.HTTPConnection(*receiver.server_address[:2], timeout=10)
    started = time.perf_counter()
    for b in range(20):
        body = json.dumps([sg_event("A1|email", "delivered", 1000 + b * 100 + i) for i in range(100)]).encode()
        assert post(receiver, SENDGRID_PATH, body, sign(private, body), conn=conn) == 200
    elapsed = time.perf_counter() - started
    conn.close()
    assert receiver.cfg.accepted == 2000
    with capsys.disabled():
        print(f"\nreceiver: 2000 events in {elapsed:.2f} s = {2000 / elapsed:.0f} events/s")


def test_cli_import_reports_a_bad_file_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from relance.cli import app

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(app, ["events", "import", str(bad), "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code != 0 and "not JSON" in str(res.exception or res.output)


def test_delivery_and_bounce_rates_by_channel(tmp_path):
    """Two emails sent on DAY1: one delivered, one hard-bounced → delivery rate 50 %, bounce rate 50 %."""
    from tasks.measure import measure

    db = ledger_db(tmp_path)
    saved = tmp_path / "events.json"
    saved.write_text(
        json.dumps(
            [
                sg_event("A1|email", "delivered", 50),
                sg_event("A2|email", "bounce", 51, type="bounce", email="c2@client.example"),
            ]
        )
    )
    import_file(db, saved)
    measure(str(db), DAY1)
    got = dict(
        (
            (m, v)
            for m, v in rows(
                db,
                "select metric, value from recovery_metrics where as_of = '2026-03-16' "
                "and dimension = 'channel' and metric like '%rate_30d' "
                "and dimension_value = 'email'",
            )
        )
    )
    assert got == {"delivery_rate_30d": 50, "bounce_rate_30d": 50}


def test_a_line_torn_by_a_crash_costs_only_itself(tmp_path):
    from tasks.events import read_journal

    journal = Journal(tmp_path / "j")
    journal.append("sendgrid", [sg_event("A1|email", "processed", 60)])
    path = next((tmp_path / "j").glob("events-*.jsonl"))
    with path.open("a") as f:
        f.write('{"source":"sendgrid","event":{"ev')  # the receiver died mid-write: never acknowledged
    assert [r["event"]["sg_event_id"] for r in read_journal(tmp_path / "j")] == ["ev-60"]
    journal.append("sendgrid", [sg_event("A1|email", "delivered", 61)])
    assert [r["event"]["sg_event_id"] for r in read_journal(tmp_path / "j")] == ["ev-60", "ev-61"]


def test_post_import_sets_receipt_and_the_formal_notice_deadline(tmp_path):
    from relance.core.errors import UserError
    from tasks.events import import_tracking

    db = build(
        tmp_path,
        customers=[customer("C1"), customer("C2")],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "100.00"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "50.00"),
        ],
        as_of=DAY1,
        actions=[
            action(
                "N1", "C1", "formal_notice", ["F1"], deliveries=[("N1|registered_letter", "registered_letter", "sent")]
            ),
            action(
                "N2", "C2", "formal_notice", ["F2"], deliveries=[("N2|registered_letter", "registered_letter", "sent")]
            ),
        ],
    )
    csv_file = tmp_path / "tracking.csv"
    csv_file.write_text(
        "reference;tracking_number;deposit_date;receipt_date;return_reason\n"
        "N1|registered_letter;1A00000001;2026-03-17;2026-03-20;\n"
        "N2|registered_letter;1A00000002;2026-03-17;returned;refused\n"
        "ZZ|letter;1A00000003;2026-03-17;2026-03-19;\n"
    )
    for _ in range(2):  # a re-import changes nothing
        r = import_tracking(db, csv_file)
        assert r["loaded"] == 2 and r["unknown"] == ["ZZ|letter"]
    got = rows(
        db,
        "select delivery_id, tracking_number, received_on, outcome, return_reason, deadline_on "
        "from postal_tracking order by 1",
    )
    assert got == [
        ("N1|registered_letter", "1A00000001", date(2026, 3, 20), "received", None, date(2026, 3, 28)),
        ("N2|registered_letter", "1A00000002", None, "returned", "refused", None),
    ]
    d = deliveries(db)
    assert d["N1|registered_letter"]["delivery_state"] == "delivered"
    assert d["N2|registered_letter"]["delivery_state"] == "undelivered"
    assert rows(db, "select count(*) from delivery_events where actor = 'post'") == [(2,)]
    csv_file.write_text("reference,receipt_date\nN1|registered_letter,20/03/2026\n")
    with pytest.raises(UserError, match="row 2"):
        import_tracking(db, csv_file)


def test_dossier_shows_the_formal_notice_receipt_and_deadline(tmp_path):
    import csv

    from tasks.dispatch import dispatch
    from tasks.events import import_tracking

    db = build(
        tmp_path,
        customers=[customer("C1")],
        invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "100.00")],
        as_of=DAY1,
        actions=[
            action(
                "N1",
                "C1",
                "formal_notice",
                ["F1"],
                as_of=date(2026, 3, 2),
                deliveries=[("N1|registered_letter", "registered_letter", "sent")],
                charges={"per_invoice": {"F1": ("1.00", "40.00")}},
            ),
            action(
                "L1",
                "C1",
                "litigation",
                ["F1"],
                deliveries=[("L1|handoff", "handoff")],
                charges={"per_invoice": {"F1": ("2.00", "40.00")}},
            ),
        ],
    )
    csv_file = tmp_path / "tracking.csv"
    csv_file.write_text(
        "reference,tracking_number,deposit_date,receipt_date\nN1|registered_letter,1A9,2026-03-03,2026-03-05\n"
    )
    import_tracking(db, csv_file)
    dispatch(str(db), DAY1, str(tmp_path / "outbox"), now=datetime(2026, 3, 16, 9, tzinfo=UTC), auto_approve=True)
    folder = tmp_path / "outbox" / "2026-03-16" / "handoff" / unit_stem("C1", "EUR")
    notice = [r for r in csv.DictReader(open(folder / "actions.csv", encoding="utf-8")) if r["action_id"] == "N1"]
    assert [(r["tracking_number"], r["received_on"], r["deadline_on"], r["delivery_state"]) for r in notice] == [
        ("1A9", "2026-03-05", "2026-03-13", "delivered")
    ]
