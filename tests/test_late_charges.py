"""Statements of late-payment charges on invoices paid late (issue 16 §3, L441-10), by hand.

The default policy (policies/default.yaml) with `late_charges_statement.enabled: true`: monthly,
min_total 40.00, email + letter, approval required; charges in b2b, margin 10 points over the
reference rate (2025-H1 3.15 % → 13.15 %, 2025-H2 2.15 % → 12.15 %), 365-day year, 40.00 EUR per
invoice. A payment lowers the base from its own day (sql/macros/charges.sql): the day an invoice
is settled carries no interest.

PAR (b2b), P1 2500.00 due 2025-06-10, 700.00 paid 06-20, 1800.00 paid 07-15 (settled 07-15, 35 days late):
  06-11..06-19   9 days × 2500.00 × 13.15 = 295 875
  06-20..06-30  11 days × 1800.00 × 13.15 = 260 370
  07-01..07-14  14 days × 1800.00 × 12.15 = 306 180
  862 425 / 36 500 = 23.6281… → 23.63; + 40.00 indemnity = 63.63 on the statement of July 2025,
  made on Fri 2025-08-01 (first business day of August).
PAR P2 1000.00 due 2025-07-31, paid 08-05 (5 days late): 08-01..08-04 4 days × 1000 × 12.15 = 48 600
  / 36 500 = 1.3315… → 1.33; + 40.00 = 41.33 on the statement of August, made on Mon 2025-09-01.
KID (b2c), K1 1000.00 due 2025-06-10 paid 07-15: no charges (b2c).
ONT (b2b), T1 1000.00 due 2025-07-10 paid on 07-10: on time, nothing.
POOL (b2b), Q1 500.00 due 2025-07-01, settled by a payment on account on 07-20: the allocation gives
  no settlement date (credit pool), not charged.
USD (b2b, USD), U1 1000.00 due 2025-07-01 paid 07-11: 07-02..07-10 9 days × 1000 × 12.15 = 109 350
  / 36 500 = 2.9958… → 3.00 USD; the 40.00 EUR indemnity is not in the USD total: 3.00 < 40.00,
  no statement (min_total).
"""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal as D

import pytest

from relance.core.paths import DEFAULT_POLICY
from tests.ladder_helpers import customer, invoice, payment, query, run_days, write_source


def _policy(tmp_path, **changes) -> str:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    text = text.replace("late_charges_statement:\n  enabled: false", "late_charges_statement:\n  enabled: true")
    for key, value in changes.items():
        text = text.replace(f"  {key}: ", f"  {key}: {value}  # was: ", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _source(tmp_path):
    return write_source(
        tmp_path / "src",
        customers=[
            customer("PAR"),
            customer("KID", segment="b2c"),
            customer("ONT"),
            customer("USD"),
            customer("POOL"),
        ],
        invoices=[
            invoice("P1", "PAR", "2025-06-10", "2500.00"),
            invoice("P2", "PAR", "2025-07-31", "1000.00"),
            invoice("K1", "KID", "2025-06-10", "1000.00"),
            invoice("T1", "ONT", "2025-07-10", "1000.00"),
            invoice("U1", "USD", "2025-07-01", "1000.00", currency="USD"),
            invoice("Q1", "POOL", "2025-07-01", "500.00"),
        ],
        payments=[
            payment("Y1", "PAR", "2025-06-20", "700.00", invoice_id="P1"),
            payment("Y2", "PAR", "2025-07-15", "1800.00", invoice_id="P1"),
            payment("Y3", "PAR", "2025-08-05", "1000.00", invoice_id="P2"),
            payment("YK", "KID", "2025-07-15", "1000.00", invoice_id="K1"),
            payment("YT", "ONT", "2025-07-10", "1000.00", invoice_id="T1"),
            payment("YU", "USD", "2025-07-11", "1000.00", invoice_id="U1", currency="USD"),
            payment("YQ", "POOL", "2025-07-20", "500.00"),  # on account: settles Q1 through the credit pool
        ],
    )


def _statements(db):
    return query(
        db,
        """select statement_id, period, status, invoice_ids, interest_amount, indemnity_amount, charges_total
           from late_charge_statements order by statement_id""",
    )


@pytest.fixture
def charged(tmp_path):
    """Ingested and aged up to 2025-09-01; the statement step run on 2025-08-01."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    run_days(_source(tmp_path), db, ["2025-07-31", "2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 8, 1), load_policy(pol_path))
    return db, pol_path, out


def test_invoice_paid_late_interest_day_by_day_and_indemnity(charged):
    db, _, out = charged
    assert out["statements"] == 1 and out["period"] == "2025-07" and out["below_min_total"] == 1  # USD
    assert _statements(db) == [
        ("LC|PAR|EUR|2025-07", "2025-07", "pending_approval", ["P1"], D("23.63"), D("40.00"), D("63.63"))
    ]
    assert query(
        db,
        """select invoice_id, due_date, paid_on, days_late, interest_from, interest_amount, indemnity_amount,
                  indemnity_currency, statement_id, charged_on from late_charges""",
    ) == [
        (
            "P1",
            date(2025, 6, 10),
            date(2025, 7, 15),
            35,
            date(2025, 6, 11),
            D("23.63"),
            D("40.00"),
            "EUR",
            "LC|PAR|EUR|2025-07",
            date(2025, 8, 1),
        )
    ]
    periods = query(
        db,
        "select period_start, period_end, days, annual_rate, open_amount from late_charge_periods order by period_start",
    )
    assert periods == [
        (date(2025, 6, 11), date(2025, 6, 19), 9, D("13.1500"), D("2500.00")),
        (date(2025, 6, 20), date(2025, 6, 30), 11, D("13.1500"), D("1800.00")),
        (date(2025, 7, 1), date(2025, 7, 14), 14, D("12.1500"), D("1800.00")),
    ]


def test_b2c_on_time_and_below_min_total_give_no_statement(charged):
    db, _, _ = charged
    # K1 (b2c), T1 (on time), Q1 (credit pool): never claimed; U1: 3.00 USD < 40.00, no statement, not charged
    assert [r[0] for r in query(db, "select invoice_id from late_charges")] == ["P1"]
    assert not query(db, "select 1 from deliveries where action_id like 'LC|USD|%' or action_id like 'LC|KID|%'")


def test_never_charged_twice_on_a_rerun_or_the_next_period(charged):
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db, pol_path, _ = charged
    pol = load_policy(pol_path)
    before = _statements(db)
    with warehouse.open_db(db) as con:
        again = make_statements(con, date(2025, 8, 1), pol)
        later_in_month = make_statements(con, date(2025, 8, 20), pol)
    assert again["statements"] == 0 and later_in_month["statements"] == 0
    assert _statements(db) == before
    # the next period (Mon 2025-09-01): only P2, paid in August; P1 is not charged again
    run_days(None, db, ["2025-09-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 9, 1), pol)
        rerun = make_statements(con, date(2025, 9, 1), pol)
    assert out["statements"] == 1 and rerun["statements"] == 0
    assert _statements(db)[1] == (
        "LC|PAR|EUR|2025-08",
        "2025-08",
        "pending_approval",
        ["P2"],
        D("1.33"),
        D("40.00"),
        D("41.33"),
    )
    assert query(db, "select invoice_id, count(*) from late_charges group by all order by 1") == [("P1", 1), ("P2", 1)]


def test_before_the_statement_day_nothing(tmp_path):
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements, statement_day

    pol = load_policy(_policy(tmp_path))
    # 2025-11-01 is a Saturday and All Saints' Day; the first business day of November is Mon 11-03
    assert statement_day(pol, date(2025, 11, 20)) == date(2025, 11, 3)
    # made on the first run on or after it: none on Sat 11-01 and Sun 11-02
    with warehouse.open_db(str(tmp_path / "r.duckdb")) as con:
        out = make_statements(con, date(2025, 11, 2), pol)
    assert out == {
        "enabled": True,
        "period": "2025-10",
        "statement_day": "2025-11-03",
        "statements": 0,
        "note": "before the statement day",
    }


def test_disabled_by_default(tmp_path):
    from relance.core.policy import load_policy

    assert load_policy(None).late_charges_statement.enabled is False


def _pdf_text(path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


def test_statement_waits_for_approval_then_goes_out_with_its_pdf(charged, tmp_path):
    from email import message_from_bytes
    from email.policy import default as email_policy

    from tasks import warehouse
    from tasks.dispatch import approve, dispatch
    from tasks.dispatch.approval import pending_actions

    db, pol_path, _ = charged
    sid = "LC|PAR|EUR|2025-07"
    outbox = tmp_path / "outbox"
    with warehouse.open_db(db) as con:
        pending = pending_actions(con, date(2025, 8, 1))
    assert pending[sid]["stage"] == "late_charges_statement"
    assert pending[sid]["charges_total"] == D("63.63")
    assert pending[sid]["delivery_ids"] == [f"{sid}|email", f"{sid}|letter"]

    dispatch(db, date(2025, 8, 1), str(outbox), policy=pol_path)  # nobody approved: nothing goes out
    assert query(db, "select status from deliveries where action_id = $s order by delivery_id", {"s": sid}) == [
        ("pending_approval",),
        ("pending_approval",),
    ]

    approve(db, date(2025, 8, 1), action_ids=[sid], by="daf")
    assert query(db, "select status, decided_by from late_charge_statements where statement_id = $s", {"s": sid}) == [
        ("approved", "daf")
    ]
    out = dispatch(db, date(2025, 8, 1), str(outbox), policy=pol_path)
    assert out["late_charges"]["sent"] == {"sent": 2}
    # its email and its letter sent: the statement says so
    assert query(db, "select status from late_charge_statements where statement_id = $s", {"s": sid}) == [("sent",)]
    rows = dict(
        query(db, "select channel, artifact_path from deliveries where action_id = $s and status = 'sent'", {"s": sid})
    )
    text = _pdf_text(rows["letter"])
    assert "Relevé des pénalités de retard" in text
    for shown in (
        "P1",
        "10/06/2025",
        "15/07/2025",
        "35",
        "23,63",
        "40,00",
        "63,63",
        "13,15",
        "12,15",
        "2025-H1",
        "2025-H2",
    ):
        assert shown in text, shown
    eml = message_from_bytes(open(rows["email"], "rb").read(), policy=email_policy)
    assert "Relevé des pénalités de retard" in eml["Subject"]
    attached = [p for p in eml.walk() if p.get_content_type() == "application/pdf"]
    assert len(attached) == 1
    again = dispatch(db, date(2025, 8, 1), str(outbox), policy=pol_path)  # sent once, never twice
    assert "late_charges" not in again


def test_a_sent_formal_notice_already_claimed_the_indemnity_and_its_days(tmp_path):
    """A formal notice for P1 dated 2025-07-05, sent with the figures of that day (interest to 07-05
    and the 40.00): the statement charges only 07-06..07-14, 9 days × 1800.00 × 12.15 = 196 830
    / 36 500 = 5.3926… → 5.39, no indemnity (min_total lowered to 5.00 so that it is made)."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path, min_total='"5.00"')
    run_days(_source(tmp_path), db, ["2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        con.execute(
            """insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank,
                   amount_due, invoice_ids, status, mode, created_at)
               values ('PAR|EUR|1|formal_notice', '2025-07-05', 'PAR', 'EUR', 'PAR|EUR|1', 'formal_notice', 5,
                       1800.00, ['P1'], 'approved', 'live', now())"""
        )
        con.execute(
            """insert into action_charges values ('PAR|EUR|1|formal_notice', 'P1', 'PAR', 'EUR', '2025-06-10',
                   1800.00, 25, 17.95, 40.00, 'EUR')"""
        )
        con.execute(
            """insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at,
                                       figures_as_of)
               values ('PAR|EUR|1|formal_notice|registered_letter', 'PAR|EUR|1|formal_notice', 'registered_letter',
                       'sent', 1, now(), now(), '2025-07-05')"""
        )
        out = make_statements(con, date(2025, 8, 1), load_policy(pol_path))
    assert out["statements"] == 1
    assert query(
        db, "select invoice_id, days_late, interest_from, interest_amount, indemnity_amount from late_charges"
    ) == [("P1", 35, date(2025, 7, 6), D("5.39"), D("0.00"))]
    assert _statements(db)[0][4:] == (D("5.39"), D("0.00"), D("5.39"))


def test_a_backfill_replay_simulates_the_statement_and_a_live_run_replaces_it(tmp_path):
    from flows.backfill import replay
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.ingest import ingest
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    ingest(_source(tmp_path), db, date(2025, 8, 2))
    out = replay(db, date(2025, 7, 31), date(2025, 8, 2), pol_path)
    assert out["late_charge_statements"] == 1  # made on 08-01 only
    sid = "LC|PAR|EUR|2025-07"
    assert query(db, "select statement_id, mode, status, charges_total from late_charge_statements") == [
        (sid, "replay", "simulated", D("63.63"))
    ]
    assert query(db, "select delivery_id, status from deliveries where action_id = $s order by 1", {"s": sid}) == [
        (f"{sid}|email", "simulated"),
        (f"{sid}|letter", "simulated"),
    ]
    # the replay again: nothing new; then the live run of the date makes the real statement, once
    replay(db, date(2025, 8, 1), date(2025, 8, 1), pol_path)
    with warehouse.open_db(db) as con:
        live = make_statements(con, date(2025, 8, 1), load_policy(pol_path))
    assert live["statements"] == 1
    assert query(db, "select statement_id, mode, status from late_charge_statements") == [
        (sid, "live", "pending_approval")
    ]
    assert query(db, "select invoice_id, statement_id from late_charges") == [("P1", sid)]
    assert query(db, "select status from deliveries where action_id = $s", {"s": sid}) == [
        ("pending_approval",),
        ("pending_approval",),
    ]


def test_a_live_statement_charges_an_invoice_a_replay_simulated_on_an_earlier_period(tmp_path):
    """A backfill replays 2025-08-01 (July's statement of P1, simulated: 63.63); the first live run
    is 2025-09-01 (August's statement). A live run ignores what a replay simulated, so P1 (settled
    07-15, within the 12-month window) is charged again, live, with P2: 63.63 + 41.33 = 104.96 (the
    module docstring). The replay's charge of P1 gives way (late_charges is keyed by invoice_id:
    this was a duplicate-key crash); its simulated statement stays, as simulated."""
    from flows.backfill import replay
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.ingest import ingest
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    ingest(_source(tmp_path), db, date(2025, 9, 1))
    replay(db, date(2025, 8, 1), date(2025, 8, 1), pol_path)
    assert query(db, "select invoice_id, statement_id from late_charges") == [("P1", "LC|PAR|EUR|2025-07")]
    with warehouse.open_db(db) as con:
        live = make_statements(con, date(2025, 9, 1), load_policy(pol_path))
    assert live["statements"] == 1
    assert query(
        db, "select statement_id, mode, status, invoice_ids, charges_total from late_charge_statements order by 1"
    ) == [
        ("LC|PAR|EUR|2025-07", "replay", "simulated", ["P1"], D("63.63")),
        ("LC|PAR|EUR|2025-08", "live", "pending_approval", ["P1", "P2"], D("104.96")),
    ]
    assert query(db, "select invoice_id, statement_id from late_charges order by 1") == [
        ("P1", "LC|PAR|EUR|2025-08"),
        ("P2", "LC|PAR|EUR|2025-08"),
    ]
    # P1's periods once each (06-11..06-19 on 2500.00, 06-20..06-30 on 1800.00, 07-01..07-14 at 12.15 %), P2's one
    assert query(db, "select invoice_id, count(*) from late_charge_periods group by 1 order by 1") == [
        ("P1", 3),
        ("P2", 1),
    ]


def test_the_nightly_run_makes_the_statement_after_the_ladder(tmp_path):
    from tests.ladder_helpers import run_nightly

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    (summary,) = run_nightly(_source(tmp_path), db, "2025-08-01", policy=pol_path)
    assert summary["late_charges"]["statements"] == 1
    assert summary["dispatch"]["pending_approval"] >= 1  # the statement waits with the notices
    assert query(db, "select status from late_charge_statements") == [("pending_approval",)]
    # the report's line of the month's statements, and the workbook's summary row
    import html
    import re

    from openpyxl import load_workbook

    page = re.sub(r"\s", " ", html.unescape(open(summary["report"]["html"], encoding="utf-8").read()))
    assert "Relevés des pénalités de retard du mois : 1, 63,63 € (dont 1 en attente d'approbation)" in page
    sheet = load_workbook(summary["report"]["xlsx"]).worksheets[0]
    assert ["EUR", "Pénalités de retard relevées ce mois (relevés)", 63.63] in [
        [c.value for c in row] for row in sheet.iter_rows()
    ]
    # off by default: the same night with the default policy makes none
    (plain,) = run_nightly(_source(tmp_path), str(tmp_path / "plain.duckdb"), "2025-08-01")
    assert plain["late_charges"] is None


def test_the_english_statement_and_escaped_names(charged, tmp_path):
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import get_renderer
    from tasks.late_charges import _context, render_email, render_pdf

    db, pol_path, _ = charged
    cfg = load_channels_config()
    renderer = get_renderer(cfg)
    with warehouse.open_db(db) as con:
        con.execute("update stg_customers set language = 'en', name = 'Smith <& Sons>' where customer_id = 'PAR'")
        ctx = _context(con, "LC|PAR|EUR|2025-07", cfg, renderer, date(2025, 8, 1), load_policy(pol_path))
    subject, text, html = render_email(renderer, ctx)
    assert subject.startswith("Statement of late-payment charges — 2025-07")
    assert "Smith &lt;&amp; Sons&gt;" in html and "Smith <& Sons>" not in html
    assert '<td style="padding: 2px 8px;">P1</td>' in html and "€63.63" in html
    assert "ECB reference rate plus 10 points" in text and "€40.00 per invoice" in text
    pdf = render_pdf(renderer, ctx, tmp_path / "s.pdf")
    shown = _pdf_text(pdf)
    for part in ("Statement of late-payment charges", "P1", "35", "23.63", "63.63", "13.15%", "12.15%"):
        assert part in shown, part


@pytest.mark.postgres
def test_the_statements_are_written_back_with_the_metrics(charged):
    import uuid

    from tasks.writeback import write_back
    from tests.test_writeback import PG, _pg

    db, _, _ = charged
    con, schema = _pg(), f"relance_test_{uuid.uuid4().hex[:10]}"
    try:
        for _ in range(2):  # a re-run leaves one row per statement
            write_back(db, date(2025, 8, 1), PG, schema=schema)
            assert con.execute(
                f'select as_of, statement_id, period, invoice_count, interest_amount, indemnity_amount, charges_total from "{schema}".late_charge_statements'
            ).fetchall() == [(date(2025, 8, 1), "LC|PAR|EUR|2025-07", "2025-07", 1, D("23.63"), D("40.00"), D("63.63"))]
    finally:
        con.execute(f'drop schema if exists "{schema}" cascade')


def test_sent_through_sendgrid_once_with_the_pdf_attached(charged, tmp_path, monkeypatch):
    import base64

    from tasks.dispatch import approve, dispatch
    from tests.fakes.scenario import channels_config
    from tests.fakes.sendgrid_server import FakeSendGrid

    db, pol_path, _ = charged
    sid = "LC|PAR|EUR|2025-07"
    cfg = channels_config(tmp_path, email={"backoff_base_seconds": 0.01})
    approve(db, date(2025, 8, 1), approve_all=True, by="daf")
    with FakeSendGrid() as fake:
        monkeypatch.setenv("RELANCE_SENDGRID_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        for _ in range(2):  # the second dispatch sends nothing again
            dispatch(db, date(2025, 8, 1), str(tmp_path / "out"), send=True, policy=pol_path, channels_config=cfg)
        assert [d for d in fake.delivery_ids() if d.startswith("LC|")] == [f"{sid}|email"]
        body = next(a.body for a in fake.accepted if a.body["custom_args"]["delivery_id"] == f"{sid}|email")
    (attached,) = body["attachments"]
    assert attached["filename"].endswith(".pdf") and base64.b64decode(attached["content"]).startswith(b"%PDF")
    assert query(
        db, "select channel, status, provider from deliveries where action_id = $s order by 1", {"s": sid}
    ) == [
        ("email", "sent", "sendgrid"),
        ("letter", "sent", "print"),
    ]


def test_a_rejected_statement_is_not_sent_and_its_invoices_are_not_charged_again(charged, tmp_path):
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.dispatch import approve, dispatch
    from tasks.late_charges import make_statements

    db, pol_path, _ = charged
    sid = "LC|PAR|EUR|2025-07"
    approve(db, date(2025, 8, 1), reject_ids=[sid], by="daf", reason="geste commercial")
    assert query(db, "select status, decision_reason from late_charge_statements") == [("rejected", "geste commercial")]
    assert query(db, "select status from deliveries where action_id = $s", {"s": sid}) == [("skipped",), ("skipped",)]
    assert "late_charges" not in dispatch(db, date(2025, 8, 1), str(tmp_path / "out"), policy=pol_path)
    with warehouse.open_db(db) as con:
        assert make_statements(con, date(2025, 8, 4), load_policy(pol_path))["statements"] == 0


def test_quarterly_statement(tmp_path):
    """period: quarterly; Wed 2025-10-01 makes the statement of 2025-Q3: P1 (paid 07-15) 23.63 + 40.00
    and P2 (paid 08-05) 1.33 + 40.00 → interest 24.96, indemnity 80.00, total 104.96."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path, period="quarterly")
    run_days(_source(tmp_path), db, ["2025-10-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 10, 1), load_policy(pol_path))
    assert out["period"] == "2025-Q3" and out["statements"] == 1
    assert _statements(db) == [
        ("LC|PAR|EUR|2025-Q3", "2025-Q3", "pending_approval", ["P1", "P2"], D("24.96"), D("80.00"), D("104.96"))
    ]


def test_the_approver_reads_a_draft_of_the_statement(charged, tmp_path):
    from tasks.dispatch.drafts import render_drafts

    db, pol_path, _ = charged
    (draft,) = render_drafts(db, date(2025, 8, 1), str(tmp_path / "out"), policy=pol_path)
    assert draft["action_id"] == "LC|PAR|EUR|2025-07" and "/2025-08-01/drafts/" in draft["path"]
    text = _pdf_text(draft["path"])
    assert "PROJET" in text and "63,63" in text
    assert query(db, "select count(*) from deliveries where status = 'sent'") == [(0,)]  # nothing sent


def test_a_template_that_does_not_render_sends_nothing_and_keeps_the_statement_planned(charged, tmp_path, monkeypatch):
    from tasks import late_charges
    from tasks.dispatch import approve, dispatch

    db, pol_path, _ = charged
    approve(db, date(2025, 8, 1), approve_all=True, by="daf")

    def broken(renderer, ctx):
        raise ValueError("unknown variable")

    monkeypatch.setattr(late_charges, "render_email", broken)
    out = dispatch(db, date(2025, 8, 1), str(tmp_path / "out"), policy=pol_path)
    assert any("late charges: statements of late-payment charges do not render" in e for e in out["errors"])
    assert query(db, "select status from deliveries where action_id like 'LC|%'") == [("planned",), ("planned",)]


def test_a_missing_reference_rate_makes_no_statement_and_says_which(tmp_path):
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    text = open(pol_path, encoding="utf-8").read().replace('  - {half_year: 2025-H2, rate: "2.15"}\n', "")
    open(pol_path, "w", encoding="utf-8").write(text)
    run_days(_source(tmp_path), db, ["2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 8, 1), load_policy(pol_path))
    assert out["statements"] == 0 and "no rate for 2025-H2" in out["error"]
    assert query(db, "select count(*) from late_charges") == [(0,)]


# -- gaps closed after the first version: disputes and legal holds, late-arriving payments, the
# -- statement's status after sending ------------------------------------------------------------


def _outcome(con, outcome_id, customer_id, kind, said_on, invoice_ids=None, resolves_id=None, resolution=None):
    con.execute(
        """insert into outcomes (outcome_id, customer_id, currency, kind, said_on, invoice_ids, reason, resolves_id,
                                 resolution, source, recorded_by, recorded_at)
           values ($id, $c, 'EUR', $kind, $said, $inv, $reason, $res_id, $res, 'cli', 'test', now())""",
        {
            "id": outcome_id,
            "c": customer_id,
            "kind": kind,
            "said": said_on,
            "inv": invoice_ids,
            "reason": "quality" if kind == "dispute" else None,
            "res_id": resolves_id,
            "res": resolution,
        },
    )


def test_disputed_and_legal_invoices_are_not_charged_until_a_dispute_is_rejected(tmp_path):
    """Every invoice 1000.00 due 2025-06-10 and paid in full on 2025-07-15 (b2b, one customer each):
    without a dispute each would owe 06-11..06-30 20 days × 1000 × 13.15 = 263 000 and 07-01..07-14
    14 days × 1000 × 12.15 = 170 100 → 433 100 / 36 500 = 11.8657… → 11.87 + 40.00 = 51.87.
      D1: a source hold `dispute` on D1, 06-15..06-30 (ended before the payment): disputed, never charged;
      L1: a source hold `legal` on its whole customer, 2025-01-01..06-30: legal, never charged;
      S1: a source hold `dispute` on S1 from 07-01, seen by the run of 07-10, then deleted from the
          source: the invoice_snapshot of 07-10 still says so: disputed;
      O1: a recorded dispute said 06-20, open on 08-01: withheld (dispute_open); resolved `rejected`
          on 08-10: charged on the next statement (Mon 09-01, August's), 51.87, though paid in July;
      O2: a recorded dispute said 06-20, resolved `credit_note_expected` on 07-20: disputed, never charged.
    """
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements
    from tests.ladder_helpers import hold

    names = {"D1": "DIS", "L1": "LEG", "S1": "SNP", "O1": "OUT", "O2": "UPH"}
    customers = [customer(c) for c in names.values()]
    invoices = [invoice(i, c, "2025-06-10", "1000.00") for i, c in names.items()]
    payments = [payment(f"Y{i}", c, "2025-07-15", "1000.00", invoice_id=i) for i, c in names.items()]
    holds = [
        hold("HD", "DIS", "2025-06-15", "2025-06-30", invoice_id="D1"),
        hold("HL", "LEG", "2025-01-01", "2025-06-30", kind="legal"),
    ]
    src_a = write_source(
        tmp_path / "a", customers, invoices, payments, [*holds, hold("HS", "SNP", "2025-07-01", invoice_id="S1")]
    )
    src_b = write_source(tmp_path / "b", customers, invoices, payments, holds)  # HS deleted from the source
    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    pol = load_policy(pol_path)
    run_days(src_a, db, ["2025-07-10"], policy=pol_path)
    with warehouse.open_db(db) as con:
        assert con.execute("select hold_kind from invoice_snapshot where invoice_id = 'S1'").fetchall() == [
            ("dispute",)
        ]
        _outcome(con, "DO1", "OUT", "dispute", "2025-06-20", ["O1"])
        _outcome(con, "DO2", "UPH", "dispute", "2025-06-20", ["O2"])
        _outcome(con, "RO2", "UPH", "resolution", "2025-07-20", resolves_id="DO2", resolution="credit_note_expected")
    run_days(src_b, db, ["2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 8, 1), pol)
    assert out["statements"] == 0
    assert [(r["invoice_id"], r["paid_on"], r["reason"]) for r in out["not_charged"]] == [
        ("D1", "2025-07-15", "disputed"),
        ("L1", "2025-07-15", "legal"),
        ("O1", "2025-07-15", "dispute_open"),
        ("S1", "2025-07-15", "disputed"),
        ("O2", "2025-07-15", "disputed"),
    ]
    assert query(db, "select count(*) from late_charges") == [(0,)]

    with warehouse.open_db(db) as con:
        _outcome(con, "RO1", "OUT", "resolution", "2025-08-10", resolves_id="DO1", resolution="rejected")
    run_days(None, db, ["2025-09-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 9, 1), pol)
    assert out["statements"] == 1
    assert [r["invoice_id"] for r in out["not_charged"]] == ["D1", "L1", "S1", "O2"]
    assert _statements(db) == [
        ("LC|OUT|EUR|2025-08", "2025-08", "pending_approval", ["O1"], D("11.87"), D("40.00"), D("51.87"))
    ]
    assert query(db, "select invoice_id, paid_on, days_late from late_charges") == [("O1", date(2025, 7, 15), 35)]


def test_a_payment_loaded_after_its_period_statement_is_charged_on_the_next_one(tmp_path):
    """L1 1000.00 due 2025-07-01 (PAR) is paid on 2025-07-21, but the payment reaches the source only
    after the July statement (Fri 08-01, P1 alone: 63.63). The August statement (Mon 09-01) picks it
    up with P2 (lookback_months 12: settled 2024-09-01..2025-08-31, not charged yet):
      L1: 07-02..07-20 19 days × 1000.00 × 12.15 = 230 850 / 36 500 = 6.3246… → 6.32 + 40.00
      P2: 1.33 + 40.00 (module docstring)
      → interest 7.65, indemnity 80.00, total 87.65; P1 is not charged again.
    With lookback_months 0, L1 is lost (the statement of August holds P2 alone: 41.33)."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    for lookback, expected in (
        (12, (["L1", "P2"], D("7.65"), D("80.00"), D("87.65"))),
        (0, (["P2"], D("1.33"), D("40.00"), D("41.33"))),
    ):
        folder = tmp_path / str(lookback)
        folder.mkdir()
        db = str(folder / "r.duckdb")
        pol_path = _policy(folder, lookback_months=lookback)
        pol = load_policy(pol_path)
        assert pol.late_charges_statement.lookback_months == lookback
        src = _source(folder)
        rows = {
            e: list(csv.DictReader(open(f"{src}/{e}.csv", encoding="utf-8")))
            for e in ("customers", "invoices", "payments", "holds")
        }
        rows["invoices"].append(invoice("L1", "PAR", "2025-07-01", "1000.00"))
        run_days(write_source(folder / "a", **rows), db, ["2025-08-01"], policy=pol_path)
        with warehouse.open_db(db) as con:
            assert make_statements(con, date(2025, 8, 1), pol)["statement_ids"] == ["LC|PAR|EUR|2025-07"]
        rows["payments"].append(payment("YL", "PAR", "2025-07-21", "1000.00", invoice_id="L1"))  # loaded late
        run_days(write_source(folder / "b", **rows), db, ["2025-09-01"], policy=pol_path)
        with warehouse.open_db(db) as con:
            out = make_statements(con, date(2025, 9, 1), pol)
            again = make_statements(con, date(2025, 9, 1), pol)
        assert out["statements"] == 1 and again["statements"] == 0
        assert _statements(db)[1] == ("LC|PAR|EUR|2025-08", "2025-08", "pending_approval", *expected), lookback
        charged = [r[0] for r in query(db, "select invoice_id from late_charges order by 1")]
        assert charged == (["L1", "P1", "P2"] if lookback else ["P1", "P2"])
    # the statement says it holds an invoice paid before its period, and L1's real paid date
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import get_renderer
    from tasks.late_charges import _context, render_email, render_pdf

    cfg = load_channels_config()
    renderer = get_renderer(cfg)
    with warehouse.open_db(str(tmp_path / "12" / "r.duckdb")) as con:
        ctx = _context(
            con, "LC|PAR|EUR|2025-08", cfg, renderer, date(2025, 9, 1), load_policy(_policy(tmp_path / "12"))
        )
    assert ctx["statement"]["earlier"] is True
    _, text, html = render_email(renderer, ctx)
    shown = re.sub(r"\s+", " ", _pdf_text(render_pdf(renderer, ctx, tmp_path / "s.pdf")))
    for part in (text, html, shown):
        assert "factures réglées avant cette période" in part and "21/07/2025" in part


def test_the_lookback_window_of_a_statement():
    from relance.core.policy import LateChargesStatement

    monthly = LateChargesStatement(enabled=True)
    assert monthly.lookback_months == 12
    assert monthly.window_start_of(date(2025, 8, 1)) == date(2024, 8, 1)  # July 2025's statement
    assert monthly.window_start_of(date(2025, 3, 3)) == date(2024, 3, 1)  # February 2025's
    assert LateChargesStatement(lookback_months=0).window_start_of(date(2025, 8, 1)) == date(2025, 7, 1)
    quarterly = LateChargesStatement(period="quarterly", lookback_months=1)
    assert quarterly.window_start_of(date(2025, 10, 1)) == date(2025, 7, 1)  # never after the period's start
    assert LateChargesStatement(period="quarterly").window_start_of(date(2025, 10, 1)) == date(2024, 10, 1)


def test_the_statement_says_where_it_is_after_sending(charged, tmp_path):
    """LC|PAR|EUR|2025-07 has an email and a letter. Approved, nothing sent yet: `approved`. Its
    letter undeliverable and its email sent: `partly_sent`. Both failed or undeliverable: `failed`.
    The email skipped (the letter reaches the debtor) and the letter sent: `sent`. A statement
    waiting for approval or rejected keeps its status whatever its deliveries."""
    from tasks import warehouse
    from tasks.dispatch import approve, dispatch
    from tasks.late_charges import refresh_statuses

    db, pol_path, _ = charged
    sid = "LC|PAR|EUR|2025-07"

    def status():
        return query(db, "select status from late_charge_statements where statement_id = $s", {"s": sid})[0][0]

    def deliveries(email, letter):
        with warehouse.open_db(db) as con:
            for channel, value in (("email", email), ("letter", letter)):
                con.execute(
                    "update deliveries set status = $v where delivery_id = $d", {"v": value, "d": f"{sid}|{channel}"}
                )
            return refresh_statuses(con)

    assert deliveries("failed", "failed") == 0 and status() == "pending_approval"  # not approved: unchanged
    deliveries("pending_approval", "pending_approval")
    approve(db, date(2025, 8, 1), action_ids=[sid], by="daf")
    assert status() == "approved"
    assert deliveries("planned", "planned") == 0 and status() == "approved"
    deliveries("planned", "undeliverable")  # the letter has no address: the dispatch sends the email alone
    out = dispatch(db, date(2025, 8, 1), str(tmp_path / "out"), policy=pol_path)
    assert out["late_charges"]["sent"] == {"sent": 1}
    assert status() == "partly_sent"
    assert deliveries("sent", "in_doubt") == 0 and status() == "partly_sent"
    # a person finds the in-doubt letter written: the statement is sent at once
    from tasks.dispatch.ledger import resolve

    resolve(db, [f"{sid}|letter"], sent=True, by="ops")
    assert status() == "sent"
    deliveries("sent", "in_doubt")
    assert deliveries("failed", "undeliverable") == 1 and status() == "failed"
    assert deliveries("skipped", "sent") == 1 and status() == "sent"
    assert deliveries("sent", "sent") == 0 and status() == "sent"
    # the report's line of the month's statements says where they are
    from relance.core.policy import load_policy
    from tasks.report.data import gather
    from tasks.report.format import Fmt
    from tasks.report.page import late_charges_text

    pol = load_policy(pol_path)
    for language, line in (
        ("fr", "Relevés des pénalités de retard du mois : 1, 63,63 € (dont 1 envoyé(s))"),
        ("en", "Statements of late-payment charges this month: 1, €63.63 (1 sent)"),
    ):
        with warehouse.open_db(db) as con:
            data = gather(con, date(2025, 8, 20), pol, db, language=language)
        assert re.sub(r"\s", " ", late_charges_text(data, Fmt(language, pol), "EUR")) == line
    assert deliveries("failed", "undeliverable") == 1
    with warehouse.open_db(db) as con:
        data = gather(con, date(2025, 8, 20), pol, db, language="fr")
    assert data.late_charges["EUR"]["failed"] == 1
    assert late_charges_text(data, Fmt("fr", pol), "EUR").endswith("(dont 1 non remis)")
    with warehouse.open_db(db) as con:
        con.execute("update late_charge_statements set status = 'rejected' where statement_id = $s", {"s": sid})
    assert deliveries("failed", "failed") == 0 and status() == "rejected"


def test_charges_below_min_total_wait_for_the_next_statements_while_in_the_window(tmp_path):
    """min_total 4.00. USD: U1 1000.00 due 07-01 paid 07-11: 3.00 USD (module docstring) < 4.00: no
    July statement, nothing charged. U2 1000.00 USD due 08-01 paid 08-12: 08-02..08-11 10 days ×
    1000 × 12.15 = 121 500 / 36 500 = 3.3287… → 3.33. On 09-01 the August statement takes both:
    3.00 + 3.33 = 6.33 ≥ 4.00 (the 2 × 40.00 EUR indemnities stated beside, not added)."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path, min_total='"4.00"')
    pol = load_policy(pol_path)
    src = _source(tmp_path)
    rows = {
        e: list(csv.DictReader(open(f"{src}/{e}.csv", encoding="utf-8")))
        for e in ("customers", "invoices", "payments", "holds")
    }
    rows["invoices"].append(invoice("U2", "USD", "2025-08-01", "1000.00", currency="USD"))
    rows["payments"].append(payment("YU2", "USD", "2025-08-12", "1000.00", invoice_id="U2", currency="USD"))
    run_days(write_source(tmp_path / "b", **rows), db, ["2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 8, 1), pol)
    assert out["statement_ids"] == ["LC|PAR|EUR|2025-07"] and out["below_min_total"] == 1
    run_days(None, db, ["2025-09-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 9, 1), pol)
    assert out["statement_ids"] == ["LC|PAR|EUR|2025-08", "LC|USD|USD|2025-08"]
    assert query(
        db,
        """select invoice_ids, interest_amount, indemnity_amount, indemnity_currency, charges_total
           from late_charge_statements where statement_id = 'LC|USD|USD|2025-08'""",
    ) == [(["U1", "U2"], D("6.33"), D("80.00"), "EUR", D("6.33"))]


def test_a_public_buyers_statement_follows_its_ladder_ecb_plus_8_and_a_consumer_gets_none(tmp_path):
    """The statement's charges are those of the unit's ladder (ladder_rules): a public buyer (ladder
    `public`: ECB + 8 points, 40.00) paid as P1 above —
      06-11..06-19   9 days × 2500.00 × 11.15 = 250 875
      06-20..06-30  11 days × 1800.00 × 11.15 = 220 770
      07-01..07-14  14 days × 1800.00 × 10.15 = 255 780
      727 425 / 36 500 = 19.9294… → 19.93; + 40.00 = 59.93, the margin stated: 8;
    a consumer (ladder `b2c`: legal-rate interest runs only from a formal notice) owes nothing on an
    invoice simply paid late."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.late_charges import make_statements

    src = write_source(
        tmp_path / "src",
        customers=[customer("PUB", segment="public"), customer("KID", segment="b2c")],
        invoices=[invoice("G1", "PUB", "2025-06-10", "2500.00"), invoice("K1", "KID", "2025-06-10", "2500.00")],
        payments=[
            payment("Y1", "PUB", "2025-06-20", "700.00", invoice_id="G1"),
            payment("Y2", "PUB", "2025-07-15", "1800.00", invoice_id="G1"),
            payment("Y3", "KID", "2025-06-20", "700.00", invoice_id="K1"),
            payment("Y4", "KID", "2025-07-15", "1800.00", invoice_id="K1"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    pol_path = _policy(tmp_path)
    run_days(src, db, ["2025-07-31", "2025-08-01"], policy=pol_path)
    with warehouse.open_db(db) as con:
        out = make_statements(con, date(2025, 8, 1), load_policy(pol_path))
    assert out["statements"] == 1
    assert _statements(db) == [
        ("LC|PUB|EUR|2025-07", "2025-07", "pending_approval", ["G1"], D("19.93"), D("40.00"), D("59.93"))
    ]
    assert query(db, "select reference_margin from late_charge_statements") == [(D("8.00"),)]
    assert query(db, "select count(*) from late_charges where customer_id = 'KID'") == [(0,)]
