"""The point-in-time view and the aged balance, worked by hand from the contract (§2, §4).

Unit C1/EUR at D = 2026-03-31:
  I1 100.00 due 02-04, paid 120.00 directly (P1)      → settled, 20.00 excess joins the pool
  I2 250.00 due 02-09, paid 50.00 directly (P3)       → 200.00 remaining
  I3  80.00 due 03-03 (P4 pays 30.00 on 04-02: after D, ignored at D)
  I4  60.00 due 04-19 (not due)
  I5 100.00 issued 04-10 (after D: not in view); P5 25.00 names I5, paid 03-25 → waits in the pool
  CN1 credit note 90.00; P2 40.00 on account
  pool = 90 + 20 + 40 + 25 = 175.00, applied oldest due first:
  I2 200 − 175 = 25.00 open (dpd 50, 31-60); I3 80.00 (dpd 28, 1-30); I4 60.00 (dpd −19, not_due)
Unit C2/EUR: I6 100.00, CN2 150.00 → I6 settled, unapplied credit 50.00.
Unit C2/GBP: I7 70.00 due 2025-09-01 → dpd 211, 181+ (the EUR credit does not touch GBP).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import duckdb
import pytest

from flows.nightly import nightly_run

CUSTOMERS = [
    {"customer_id": "C1", "name": "Alpha SARL", "email": "compta@alpha.example", "country": "FR"},
    {"customer_id": "C2", "name": "Beta Ltd", "country": "GB", "language": "en"},
]
INVOICES = [
    {"invoice_id": "I1", "customer_id": "C1", "issue_date": "2026-01-05", "due_date": "2026-02-04", "amount": "100.00"},
    {"invoice_id": "I2", "customer_id": "C1", "issue_date": "2026-01-10", "due_date": "2026-02-09", "amount": "250.00"},
    {"invoice_id": "I3", "customer_id": "C1", "issue_date": "2026-02-01", "due_date": "2026-03-03", "amount": "80.00"},
    {"invoice_id": "I4", "customer_id": "C1", "issue_date": "2026-03-20", "due_date": "2026-04-19", "amount": "60.00"},
    {"invoice_id": "I5", "customer_id": "C1", "issue_date": "2026-04-10", "due_date": "2026-05-10", "amount": "100.00"},
    {
        "invoice_id": "CN1",
        "customer_id": "C1",
        "kind": "credit_note",
        "issue_date": "2026-02-15",
        "due_date": "2026-02-15",
        "amount": "90.00",
    },
    {"invoice_id": "I6", "customer_id": "C2", "issue_date": "2026-01-01", "due_date": "2026-01-31", "amount": "100.00"},
    {
        "invoice_id": "CN2",
        "customer_id": "C2",
        "kind": "credit_note",
        "issue_date": "2026-02-01",
        "due_date": "2026-02-01",
        "amount": "150.00",
    },
    {
        "invoice_id": "I7",
        "customer_id": "C2",
        "issue_date": "2025-08-02",
        "due_date": "2025-09-01",
        "amount": "70.00",
        "currency": "GBP",
    },
]
PAYMENTS = [
    {"payment_id": "P1", "customer_id": "C1", "invoice_id": "I1", "paid_date": "2026-02-20", "amount": "120.00"},
    {"payment_id": "P2", "customer_id": "C1", "paid_date": "2026-03-01", "amount": "40.00"},
    {"payment_id": "P3", "customer_id": "C1", "invoice_id": "I2", "paid_date": "2026-03-05", "amount": "50.00"},
    {"payment_id": "P4", "customer_id": "C1", "invoice_id": "I3", "paid_date": "2026-04-02", "amount": "30.00"},
    {"payment_id": "P5", "customer_id": "C1", "invoice_id": "I5", "paid_date": "2026-03-25", "amount": "25.00"},
]
HOLDS = [
    {
        "hold_id": "H1",
        "customer_id": "C1",
        "invoice_id": "I3",
        "kind": "dispute",
        "start_date": "2026-03-01",
        "end_date": "2026-04-30",
    },
    {"hold_id": "H2", "customer_id": "C2", "kind": "promise", "start_date": "2026-03-01", "end_date": "2026-03-15"},
]


def snapshot(db, as_of):
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            r[0]: r[1:]
            for r in con.execute(
                "select invoice_id, open_amount, days_past_due, bucket, held, hold_kind, hold_scope "
                "from invoice_snapshot where as_of = ? order by invoice_id",
                [as_of],
            ).fetchall()
        }


def aged(db, as_of):
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            (r[0], r[1], r[2]): (r[3], r[4])
            for r in con.execute(
                "select customer_id, currency, bucket, amount, invoice_count from aged_balance where as_of = ?",
                [as_of],
            ).fetchall()
        }


@pytest.fixture
def source(source_writer):
    return source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)


def test_allocation_direct_then_pool_oldest_first(source, tmp_path):
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=date(2026, 3, 31), source=str(source), db=str(db))
    assert snapshot(db, date(2026, 3, 31)) == {
        "I2": (D("25.00"), 50, "31-60", False, None, None),
        "I3": (D("80.00"), 28, "1-30", True, "dispute", "invoice"),
        "I4": (D("60.00"), -19, "not_due", False, None, None),
        "I7": (D("70.00"), 211, "181+", False, None, None),
    }
    assert aged(db, date(2026, 3, 31)) == {
        ("C1", "EUR", "31-60"): (D("25.00"), 1),
        ("C1", "EUR", "1-30"): (D("80.00"), 1),
        ("C1", "EUR", "not_due"): (D("60.00"), 1),
        ("C2", "EUR", "unapplied_credit"): (D("-50.00"), 0),
        ("C2", "GBP", "181+"): (D("70.00"), 1),
    }


def test_point_in_time_payment_after_d_and_invoice_issued_later(source, tmp_path):
    db = tmp_path / "r.duckdb"
    # 04-05: P4 (30.00 on I3, paid 04-02) now counts; I5 is still not issued, P5 still in the pool.
    nightly_run(as_of=date(2026, 4, 5), source=str(source), db=str(db))
    snap = snapshot(db, date(2026, 4, 5))
    assert {k: v[0] for k, v in snap.items()} == {
        "I2": D("25.00"),
        "I3": D("50.00"),
        "I4": D("60.00"),
        "I7": D("70.00"),
    }
    # 04-15: I5 is issued, P5 settles it directly (25.00); the pool shrinks to 150.00 → I2 has 50.00 open.
    # the same hand-written files ten days on: stale by the freshness guard, which is not what this tests
    nightly_run(as_of=date(2026, 4, 15), source=str(source), db=str(db), allow_stale=True)
    snap = snapshot(db, date(2026, 4, 15))
    assert {k: v[0] for k, v in snap.items()} == {
        "I2": D("50.00"),
        "I3": D("50.00"),
        "I4": D("60.00"),
        "I5": D("75.00"),
        "I7": D("70.00"),
    }
    assert snap["I4"][1:3] == (-4, "not_due")
    # the customer-level promise of C2 ended on 03-15: nothing of C2 is held
    assert snap["I7"][3] is False


def test_future_rows_in_the_source_change_nothing_at_d(source_writer, tmp_path):
    """Invoices issued and payments made after D are present in the source: D's outputs are those
    of a source without them."""
    as_of = date(2026, 3, 31)
    past_invoices = [i for i in INVOICES if i["issue_date"] <= "2026-03-31"]
    past_payments = [p for p in PAYMENTS if p["paid_date"] <= "2026-03-31" and p.get("invoice_id") != "I5"]
    # P5 names I5, unknown in a source without I5: in the trimmed source it is on account, as the rule says
    past_payments.append({**PAYMENTS[4], "invoice_id": ""})
    full = source_writer("full", customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    trimmed = source_writer("trimmed", customers=CUSTOMERS, invoices=past_invoices, payments=past_payments, holds=HOLDS)
    nightly_run(as_of=as_of, source=str(full), db=str(tmp_path / "full.duckdb"))
    nightly_run(as_of=as_of, source=str(trimmed), db=str(tmp_path / "trimmed.duckdb"))
    assert snapshot(tmp_path / "full.duckdb", as_of) == snapshot(tmp_path / "trimmed.duckdb", as_of)
    assert aged(tmp_path / "full.duckdb", as_of) == aged(tmp_path / "trimmed.duckdb", as_of)


def test_rerun_replaces_the_dates_rows_and_keeps_other_dates(source, source_writer, tmp_path):
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=date(2026, 3, 31), source=str(source), db=str(db))
    nightly_run(as_of=date(2026, 4, 5), source=str(source), db=str(db))
    first = snapshot(db, date(2026, 3, 31))
    # the source changes (I4 is paid in full on 03-30), and 03-31 is run again
    changed = source_writer(
        "changed",
        customers=CUSTOMERS,
        invoices=INVOICES,
        holds=HOLDS,
        payments=PAYMENTS
        + [{"payment_id": "P9", "customer_id": "C1", "invoice_id": "I4", "paid_date": "2026-03-30", "amount": "60.00"}],
    )
    nightly_run(as_of=date(2026, 3, 31), source=str(changed), db=str(db))
    again = snapshot(db, date(2026, 3, 31))
    assert set(first) - set(again) == {"I4"} and len(again) == 3
    assert len(snapshot(db, date(2026, 4, 5))) == 4  # the other date stays as it was
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from invoice_snapshot where as_of = '2026-03-31'").fetchone()[0] == 3
        assert (
            con.execute(
                "select count(*) from aged_balance where as_of = '2026-03-31' and bucket = 'not_due'"
            ).fetchone()[0]
            == 0
        )  # a zero amount is left out


def test_bucket_boundaries_follow_the_policy(source_writer, tmp_path):
    """dpd 0 → not_due, 1 → 1-30, 30 → 1-30, 31 → 31-60, 90 → 61-90, 91 → 91-180, 180 → 91-180, 181 → 181+."""
    as_of = date(2026, 6, 30)
    dpds = [0, 1, 30, 31, 60, 61, 90, 91, 180, 181]
    invoices = []
    for n in dpds:
        due = date.fromordinal(as_of.toordinal() - n)
        invoices.append(
            {
                "invoice_id": f"D{n}",
                "customer_id": "C1",
                "issue_date": date.fromordinal(due.toordinal() - 30).isoformat(),
                "due_date": due.isoformat(),
                "amount": "1.00",
            }
        )
    src = source_writer(customers=CUSTOMERS[:1], invoices=invoices)
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=as_of, source=str(src), db=str(db))
    got = {k: (v[1], v[2]) for k, v in snapshot(db, as_of).items()}
    assert got == {
        "D0": (0, "not_due"),
        "D1": (1, "1-30"),
        "D30": (30, "1-30"),
        "D31": (31, "31-60"),
        "D60": (60, "31-60"),
        "D61": (61, "61-90"),
        "D90": (90, "61-90"),
        "D91": (91, "91-180"),
        "D180": (180, "91-180"),
        "D181": (181, "181+"),
    }


def test_custom_bucket_boundaries(source_writer, tmp_path):
    policy = tmp_path / "policy.yaml"
    from relance.core.paths import DEFAULT_POLICY

    text = DEFAULT_POLICY.read_text()
    start = text.index("aging_buckets:")
    end = text.index("\n\n", start)
    policy.write_text(
        text[:start]
        + 'aging_buckets:\n  - {name: current, max_days: 0}\n  - {name: "1-45", max_days: 45}\n  - {name: "46+"}'
        + text[end:]
    )
    # at 2026-03-18: A due 01-31 → dpd 46 → "46+"; B due 02-01 → dpd 45 → "1-45"; C due 03-18 → 0 → current
    src = source_writer(
        customers=CUSTOMERS[:1],
        invoices=[
            {
                "invoice_id": "A",
                "customer_id": "C1",
                "issue_date": "2026-01-01",
                "due_date": "2026-01-31",
                "amount": "5.00",
            },
            {
                "invoice_id": "B",
                "customer_id": "C1",
                "issue_date": "2026-01-01",
                "due_date": "2026-02-01",
                "amount": "7.00",
            },
            {
                "invoice_id": "C",
                "customer_id": "C1",
                "issue_date": "2026-01-01",
                "due_date": "2026-03-18",
                "amount": "9.00",
            },
        ],
    )
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=date(2026, 3, 18), source=str(src), db=str(db), policy=str(policy))
    assert aged(db, date(2026, 3, 18)) == {
        ("C1", "EUR", "46+"): (D("5.00"), 1),
        ("C1", "EUR", "1-45"): (D("7.00"), 1),
        ("C1", "EUR", "current"): (D("9.00"), 1),
    }
