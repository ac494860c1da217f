"""The written recap (issue 14, seed 004): after a promise, a plan or a dispute, the next dispatch
sends the debtor what was agreed and asks for confirmation — by email through SendGrid (here the
compatible loopback fake), by letter without an email address — once, never twice; a plan's
instalments get a reminder a few days before (policy outcomes.instalment_reminder_days = 3)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from tasks import outcomes
from tasks.dispatch import dispatch
from tests.fakes.scenario import build, channels_config, customer, invoice
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
def db(tmp_path):
    return str(
        build(
            tmp_path,
            customers=[
                customer("C1", "Boulangerie <Martin> & Fils", email="compta@martin.example"),
                customer("C2", "Acme Ltd", language="en", email="ap@acme.example"),
                customer("C3", "Sans Email SARL", email=""),
            ],
            invoices=[
                invoice("F1", "C1", "2026-01-05", "2026-02-04", "1234.56"),
                invoice("F2", "C2", "2026-01-05", "2026-02-04", "1000.00"),
                invoice("F3", "C3", "2026-01-05", "2026-02-04", "300.00"),
            ],
            as_of=AS_OF,
            actions=[],
        )
    )


def _deliveries(db):
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(
            "select delivery_id, channel, status, provider from deliveries order by delivery_id"
        ).fetchall()
    finally:
        con.close()


def test_recaps_reach_sendgrid_once_and_a_letter_without_email(tmp_path, db, sendgrid):
    cfg = channels_config(tmp_path, email={"backoff_base_seconds": 0.01})
    promise = outcomes.add(
        db,
        {
            "customer": "C1",
            "kind": "promise",
            "amount": "1234.56",
            "date": "2026-03-27",
            "by": "julie",
            "on": "2026-03-16",
        },
        today=AS_OF,
    )["outcome_id"]
    plan = outcomes.add(
        db,
        {
            "customer": "C2",
            "kind": "plan",
            "instalments": "2026-03-20:400.00,2026-04-20:600.00",
            "invoices": "F2",
            "by": "julie",
            "on": "2026-03-16",
        },
        today=AS_OF,
    )["outcome_id"]
    dispute = outcomes.add(
        db,
        {"customer": "C3", "kind": "dispute", "invoices": "F3", "reason": "quality", "on": "2026-03-16"},
        today=AS_OF,
    )["outcome_id"]
    outcomes.add(
        db, {"customer": "C1", "kind": "no_answer", "on": "2026-03-16"}, today=AS_OF
    )  # no commitment: no recap

    first = dispatch(db, AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert first["recaps"]["sent"] == {"sent": 3}, _debug(db)
    # the plan's first instalment (03-20) is 4 days away: its reminder comes on 03-17, not yet
    assert sorted(sendgrid.delivery_ids()) == sorted([f"{plan}|recap|email", f"{promise}|recap|email"])
    assert _deliveries(db) == sorted(
        [
            (f"{dispute}|recap|letter", "letter", "sent", "print"),
            (f"{plan}|recap|email", "email", "sent", "sendgrid"),
            (f"{promise}|recap|email", "email", "sent", "sendgrid"),
        ]
    )
    bodies = {a.body["custom_args"]["delivery_id"]: a.body for a in sendgrid.accepted}
    fr = bodies[f"{promise}|recap|email"]
    html = next(c["value"] for c in fr["content"] if c["type"] == "text/html")
    text = next(c["value"] for c in fr["content"] if c["type"] == "text/plain")
    assert fr["subject"].startswith("Récapitulatif de notre échange : règlement promis le 27/03/2026")
    assert "vous vous êtes engagé à régler 1\u202f234,56\u00a0€ au plus tard le 27/03/2026" in text
    assert "confirmer par retour d'email" in text
    assert "Boulangerie &lt;Martin&gt; &amp; Fils" in html and "<Martin>" not in html  # autoescaped
    en = bodies[f"{plan}|recap|email"]
    en_text = next(c["value"] for c in en["content"] if c["type"] == "text/plain")
    assert "pay €1,000.00 in 2 instalments, for invoice F2" in en_text
    assert "1. 20 March 2026  €400.00" in en_text and "2. 20 April 2026  €600.00" in en_text
    letter = Path(_path(db, f"{dispute}|recap|letter"))
    assert letter.is_file() and letter.suffix == ".pdf"

    # again the same night, and the next night: nothing twice
    dispatch(db, AS_OF, str(tmp_path / "out"), send=True, now=NOW, channels_config=cfg)
    assert len(sendgrid.accepted) == 2
    later = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)
    second = dispatch(db, date(2026, 3, 17), str(tmp_path / "out"), send=True, now=later, channels_config=cfg)
    # 03-17 = 03-20 − 3 days: the reminder of instalment 1, once
    assert sendgrid.delivery_ids()[2:] == [f"{plan}|instalment_1|email"]
    reminder = sendgrid.accepted[2].body
    assert reminder["subject"].startswith("Reminder: your payment plan's instalment due on 20 March 2026")
    assert second["recaps"]["sent"] == {"sent": 1}
    dispatch(
        db,
        date(2026, 3, 18),
        str(tmp_path / "out"),
        send=True,
        now=datetime(2026, 3, 18, 9, 0, tzinfo=UTC),
        channels_config=cfg,
    )
    assert len(sendgrid.accepted) == 3


def _path(db, delivery_id):
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute("select artifact_path from deliveries where delivery_id = ?", [delivery_id]).fetchone()[0]
    finally:
        con.close()


def _debug(db):
    con = duckdb.connect(db, read_only=True)
    return con.execute("select delivery_id, status, last_error from deliveries").fetchall()


def test_wrong_number_makes_the_call_fall_back_to_a_letter(tmp_path):
    from tests.fakes.scenario import action

    db = str(
        build(
            tmp_path,
            customers=[customer("C1", "Client 1")],
            invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "500.00")],
            as_of=AS_OF,
            actions=[action("A1", "C1", "call_1", ["F1"], deliveries=[("A1|phone", "phone")])],
        )
    )
    outcomes.add(db, {"customer": "C1", "kind": "wrong_number", "by": "julie", "on": "2026-03-16"}, today=AS_OF)
    dispatch(db, AS_OF, str(tmp_path / "out"), now=NOW)
    con = duckdb.connect(db, read_only=True)
    try:
        row = con.execute(
            "select channel, status, fallback_from, last_error from deliveries where action_id = 'A1'"
        ).fetchall()
    finally:
        con.close()
    assert [(r[0], r[1], r[2]) for r in row] == [("letter", "sent", "phone")]


def test_worklist_round_trip_and_the_next_worklist_shows_the_outcome(tmp_path):
    import csv

    from tests.fakes.scenario import action

    db = str(
        build(
            tmp_path,
            customers=[customer("C1", "Client 1"), customer("C2", "Client 2")],
            invoices=[
                invoice("F1", "C1", "2026-01-05", "2026-02-04", "500.00"),
                invoice("F2", "C2", "2026-01-05", "2026-02-04", "250.00"),
            ],
            as_of=AS_OF,
            actions=[
                action("A1", "C1", "call_1", ["F1"], deliveries=[("A1|phone", "phone")]),
                action("A2", "C2", "call_1", ["F2"], deliveries=[("A2|phone", "phone")]),
            ],
        )
    )
    dispatch(db, AS_OF, str(tmp_path / "out"), now=NOW)
    sheet = next((tmp_path / "out" / "2026-03-16" / "phone").glob("worklist-*.csv"))
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["customer_id"] for r in rows] == ["C1", "C2"]
    assert rows[0]["outcome"] == rows[0]["outcome_amount"] == ""
    # the collector fills it in (a spreadsheet saves it with semicolons)
    rows[0].update(outcome="promise", outcome_amount="500.00", outcome_date="2026-03-25", outcome_on="2026-03-16")
    rows[1].update(outcome="no_answer", outcome_on="2026-03-16")
    filled = tmp_path / "filled.csv"
    with filled.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)
    res = outcomes.import_file(db, filled, today=AS_OF)
    assert (res["recorded"], res["rows_without_outcome"]) == (2, 0)
    con = duckdb.connect(db, read_only=True)
    try:
        got = con.execute(
            "select customer_id, kind, amount, recorded_by, action_id, source_row from outcomes order by source_row"
        ).fetchall()
    finally:
        con.close()
    assert [tuple(map(str, g)) for g in got] == [
        ("C1", "promise", "500.00", "Julie", "A1", "2"),
        ("C2", "no_answer", "None", "Julie", "A2", "3"),
    ]
    from tasks.dispatch.worklists import _outcomes_by_customer

    con = duckdb.connect(db)
    try:
        said = _outcomes_by_customer(con, date(2026, 3, 17), ["C1", "C2"])
    finally:
        con.close()
    assert said == {
        "C1": ["2026-03-16 promise 500.00 EUR by 2026-03-25 [pending] — Julie"],
        "C2": ["2026-03-16 no_answer — Julie"],
    }


def test_a_broken_promise_lowers_the_worklist_priority(tmp_path):
    import csv

    from tests.fakes.scenario import action

    db = str(
        build(
            tmp_path,
            customers=[customer("C1", "Client 1"), customer("C2", "Client 2")],
            invoices=[
                invoice("F1", "C1", "2026-01-05", "2026-02-04", "500.00"),
                invoice("F2", "C2", "2026-01-05", "2026-02-04", "500.00"),
            ],
            as_of=AS_OF,
            actions=[
                action("A1", "C1", "call_1", ["F1"], deliveries=[("A1|phone", "phone")]),
                action("A2", "C2", "call_1", ["F2"], deliveries=[("A2|phone", "phone")]),
            ],
        )
    )
    # C1 promised 500.00 by 03-05 (deadline 03-08) and paid nothing: broken
    outcomes.add(
        db,
        {
            "customer": "C1",
            "kind": "promise",
            "amount": "500.00",
            "date": "2026-03-05",
            "on": "2026-03-02",
            "by": "julie",
        },
        today=AS_OF,
    )
    dispatch(db, AS_OF, str(tmp_path / "out"), now=NOW)
    sheet = next((tmp_path / "out" / "2026-03-16" / "phone").glob("worklist-*.csv"))
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    # same debt, same age (40 days late: chance 1 − 0.1 × 40/90 = 0.955556; 500.00 × it = 477.78):
    # C2 first, C1's chance halved by its broken promise (238.89)
    assert [(r["customer_id"], r["priority"]) for r in rows] == [("C2", "477.78"), ("C1", "238.89")]
    assert rows[1]["last_outcomes"] == "2026-03-02 promise 500.00 EUR by 2026-03-05 [broken] — julie"
