"""recovery_metrics, worked by hand from the contract (§2, §5) and docs/metrics.md.

D = 2026-06-30; D−30 = 05-31; D−90 = 04-01; the recovery window is (D−120, D−30] = (03-02, 05-31].

EUR, customer A1 (b2b):
  IA1 1000.00 issued 03-10 due 04-09;  PA1 400.00 names IA1, paid 06-10
  IA2  500.00 issued 05-15 due 06-14;  dispute hold on IA2 from 06-01 (open-ended)
  IA3  300.00 issued 06-20 due 07-20;  CA1 credit note 100.00 issued 06-05
EUR, customer B1 (b2c):
  IB1  800.00 issued 02-01 due 03-03;  PB1 200.00 on account 05-20;  PB2 800.00 on account 06-25
GBP, customer A1: IG1 250.00 issued 01-15 due 02-14, never paid
USD, customer A1: IU1 100.00 issued 06-20 due 07-20

At D (EUR): A: IA1 1000−400 = 600, pool 100 (CA1) → IA1 500 (dpd 82, 61-90), IA2 500 (dpd 16, 1-30,
  held: dispute), IA3 300 (dpd −20, not_due); B: pool 1000 ≥ 800 → IB1 settled, 200 unapplied.
  AR = 1300, current AR = 300, overdue = 1000.
At D−30 (EUR), no run that day: A: IA1 1000, IA2 500 (IA3, CA1, PA1 are later); B: IB1 800 − 200 = 600.
  AR(D−30) = 2100.
sales(D−30, D] = IA3 300; sales(D−90, D] = IA2 500 + IA3 300 = 800; collected_30d = PA1 400 + PB2 800.
dso_90d = 1300 / 800 × 90 = 146.25; best possible = 300 / 800 × 90 = 33.75; add = 112.5
cei_30d = (2100 + 300 − 1300) / (2100 + 300 − 300) × 100 = 1100 / 2100 × 100 = 52.38095… → 52.3810
GBP: AR = AR(D−30) = 250 (all overdue, 136 days, 91-180); no sales → no DSO rows; cei = 0 / 250 = 0.
USD: AR = current = 100; dso = best = 100 / 100 × 90 = 90, add 0; cei: 0 + 100 − 100 = 0 → absent.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

import duckdb
import pytest

from relance.core.errors import UserError
from relance.core.policy import load_policy
from tasks import warehouse
from tasks.age import age
from tasks.ingest import ingest
from tasks.measure import measure, measure_on

AS_OF = date(2026, 6, 30)

CUSTOMERS = [
    {
        "customer_id": "A1",
        "name": "Alpha SARL",
        "email": "compta@alpha.example",
        "street": "1 rue A",
        "postal_code": "75001",
        "city": "Paris",
        "segment": "b2b",
    },
    {
        "customer_id": "B1",
        "name": "Bruno Martin",
        "street": "2 rue B",
        "postal_code": "69001",
        "city": "Lyon",
        "segment": "b2c",
    },
]
INVOICES = [
    {
        "invoice_id": "IA1",
        "customer_id": "A1",
        "issue_date": "2026-03-10",
        "due_date": "2026-04-09",
        "amount": "1000.00",
    },
    {
        "invoice_id": "IA2",
        "customer_id": "A1",
        "issue_date": "2026-05-15",
        "due_date": "2026-06-14",
        "amount": "500.00",
    },
    {
        "invoice_id": "IA3",
        "customer_id": "A1",
        "issue_date": "2026-06-20",
        "due_date": "2026-07-20",
        "amount": "300.00",
    },
    {
        "invoice_id": "CA1",
        "customer_id": "A1",
        "kind": "credit_note",
        "issue_date": "2026-06-05",
        "due_date": "2026-06-05",
        "amount": "100.00",
    },
    {
        "invoice_id": "IB1",
        "customer_id": "B1",
        "issue_date": "2026-02-01",
        "due_date": "2026-03-03",
        "amount": "800.00",
    },
    {
        "invoice_id": "IG1",
        "customer_id": "A1",
        "issue_date": "2026-01-15",
        "due_date": "2026-02-14",
        "amount": "250.00",
        "currency": "GBP",
    },
    {
        "invoice_id": "IU1",
        "customer_id": "A1",
        "issue_date": "2026-06-20",
        "due_date": "2026-07-20",
        "amount": "100.00",
        "currency": "USD",
    },
]
PAYMENTS = [
    {"payment_id": "PA1", "customer_id": "A1", "invoice_id": "IA1", "paid_date": "2026-06-10", "amount": "400.00"},
    {"payment_id": "PB1", "customer_id": "B1", "paid_date": "2026-05-20", "amount": "200.00"},
    {"payment_id": "PB2", "customer_id": "B1", "paid_date": "2026-06-25", "amount": "800.00"},
]
HOLDS = [
    {"hold_id": "H1", "customer_id": "A1", "invoice_id": "IA2", "kind": "dispute", "start_date": "2026-06-01"},
]

NOW = datetime(2026, 7, 1, 3, 0)


def add_action(
    con, action_id, as_of, customer, currency, stage, rank, amount_due, invoice_ids, status="sent", deliveries=()
):
    """A dunning action (and its deliveries) as the ladder and the channels would leave them (a
    `simulated` one as a backfill's replay leaves it, mode `replay`)."""
    con.execute(
        """insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank,
                                        amount_due, invoice_ids, status, mode, created_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            action_id,
            as_of,
            customer,
            currency,
            f"{customer}|{currency}|1",
            stage,
            rank,
            D(amount_due),
            list(invoice_ids),
            status,
            "replay" if status == "simulated" else "live",
            NOW,
        ],
    )
    for channel, d_status in deliveries:
        con.execute(
            """insert into deliveries (delivery_id, action_id, channel, status, created_at, updated_at)
               values (?, ?, ?, ?, ?, ?)""",
            [f"{action_id}|{channel}", action_id, channel, d_status, NOW, NOW],
        )


def add_unit(con, as_of, customer, currency, current_stage, held=False, hold_reason=None):
    con.execute(
        """insert into unit_stage (as_of, customer_id, currency, target_stage, current_stage, episode_id, held,
                                   hold_reason, driving_invoice_id, dunnable_amount)
           values (?, ?, ?, ?, ?, ?, ?, ?, null, 0)""",
        [as_of, customer, currency, current_stage, current_stage, f"{customer}|{currency}|1", held, hold_reason],
    )


def prepare(db, source, as_of):
    """ingest and age of as_of: the point-in-time view measure reads beside its own."""
    ingest(str(source), str(db), as_of)
    age(str(db), as_of)


def metrics(db, as_of) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            (r[0], r[1], r[2], r[3]): r[4]
            for r in con.execute(
                "select currency, metric, dimension, dimension_value, value from recovery_metrics where as_of = ?",
                [as_of],
            ).fetchall()
        }


@pytest.fixture
def source(source_writer):
    return source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)


#: The dates whose point-in-time view the metrics of D need: D, D−30, D−90, and the dates of the
#: measured actions X1, X2, X3 (below) and 30 days after each.
NEEDED_DATES = [
    AS_OF,
    date(2026, 5, 31),
    date(2026, 4, 1),
    date(2026, 5, 20),
    date(2026, 6, 19),
    date(2026, 4, 15),
    date(2026, 5, 15),
    date(2026, 5, 1),
]


@pytest.fixture
def measured(_measured_once, tmp_path):
    """Each test its own copy of the warehouse below (built once per way of measuring)."""
    import copy

    from tests.conftest import copy_duckdb

    built, summary = _measured_once
    return copy_duckdb(built, tmp_path / "r.duckdb"), copy.deepcopy(summary)


@pytest.fixture(scope="module", params=["allocated", "snapshots"])
def _measured_once(tmp_path_factory, request):
    """ingest + age at D, the ladder's rows inserted, then measure. `allocated`: no run at D−30 or
    D−90 (nor on the actions' dates), every point-in-time view is allocated again (a nightly run);
    `snapshots`: as in a backfill, those dates were aged from the same ingest and measure is told so,
    it reads their invoice_snapshot and aged_balance. The same figures either way."""
    from tests.conftest import write_source

    root = tmp_path_factory.mktemp(f"measured-{request.param}")
    source = write_source(root / "src", customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    db = root / "r.duckdb"
    prepare(db, source, AS_OF)
    with warehouse.open_db(db) as con:
        # measured: in (03-02, 05-31], not rejected
        add_action(
            con, "X1", date(2026, 5, 20), "A1", "EUR", "call_1", 3, "1000.00", ["IA1"], deliveries=[("phone", "sent")]
        )
        add_action(
            con,
            "X2",
            date(2026, 4, 15),
            "B1",
            "EUR",
            "formal_notice",
            6,
            "800.00",
            ["IB1"],
            deliveries=[("registered_letter", "sent"), ("email", "failed")],
        )
        add_action(
            con, "X3", date(2026, 4, 1), "A1", "GBP", "call_1", 3, "250.00", ["IG1"], deliveries=[("phone", "sent")]
        )
        # not measured: after D−30, on D−120 itself (the window is open on the left), rejected at approval
        add_action(con, "X4", date(2026, 6, 1), "A1", "EUR", "call_1", 3, "1000.00", ["IA1"])
        add_action(con, "X5", date(2026, 3, 2), "B1", "EUR", "due", 2, "800.00", ["IB1"])
        add_action(con, "X6", date(2026, 5, 25), "A1", "EUR", "formal_notice", 6, "1000.00", ["IA1"], status="rejected")
        # the day's actions and their deliveries (one in doubt)
        add_action(
            con,
            "Y1",
            AS_OF,
            "A1",
            "EUR",
            "reminder_2",
            4,
            "500.00",
            ["IA1"],
            status="sent",
            deliveries=[("email", "sent"), ("sms", "failed"), ("letter", "undeliverable")],
        )
        add_action(
            con,
            "Y2",
            AS_OF,
            "A1",
            "GBP",
            "call_2",
            5,
            "250.00",
            ["IG1"],
            status="sent",
            deliveries=[("phone", "sending")],
        )
        add_unit(con, AS_OF, "A1", "EUR", "reminder_2")
        add_unit(con, AS_OF, "B1", "EUR", None)
        add_unit(con, AS_OF, "A1", "GBP", "call_2", held=True, hold_reason="promise")
        add_unit(con, AS_OF, "A1", "USD", None)
    if request.param == "allocated":
        return db, measure(str(db), AS_OF)
    for day in NEEDED_DATES[1:]:
        age(str(db), day)
    with warehouse.open_db(db) as con:
        summary = measure_on(con, AS_OF, load_policy(None), snapshot_dates=NEEDED_DATES)
    assert (summary["point_in_time_dates"], summary["point_in_time_units"]) == (0, 0)  # nothing allocated again
    return db, summary


def test_balances_dso_and_cei_per_currency(measured):
    db, summary = measured
    m = metrics(db, AS_OF)
    eur = {k[1:]: v for k, v in m.items() if k[0] == "EUR"}
    assert eur[("open_ar", "all", "all")] == D("1300.0000")
    assert eur[("current_ar", "all", "all")] == D("300.0000")
    assert eur[("overdue_ar", "all", "all")] == D("1000.0000")
    assert eur[("unapplied_credit", "all", "all")] == D("200.0000")  # positive
    assert eur[("open_ar_30d_ago", "all", "all")] == D("2100.0000")
    assert eur[("collected_30d", "all", "all")] == D("1200.0000")
    assert eur[("sales_30d", "all", "all")] == D("300.0000")
    assert eur[("sales_90d", "all", "all")] == D("800.0000")
    assert {k[2]: v for k, v in eur.items() if k[:2] == ("open_ar", "bucket")} == {
        "not_due": D("300"),
        "1-30": D("500"),
        "31-60": D("0"),
        "61-90": D("500"),
        "91-180": D("0"),
        "181+": D("0"),
    }
    assert {k[2]: v for k, v in eur.items() if k[:2] == ("overdue_ar", "bucket")} == {
        "1-30": D("500"),
        "31-60": D("0"),
        "61-90": D("500"),
        "91-180": D("0"),
        "181+": D("0"),
    }
    assert eur[("dso_90d", "all", "all")] == D("146.2500")
    assert eur[("best_possible_dso_90d", "all", "all")] == D("33.7500")
    assert eur[("add_90d", "all", "all")] == D("112.5000")
    assert eur[("cei_30d", "all", "all")] == D("52.3810")

    gbp = {k[1:]: v for k, v in m.items() if k[0] == "GBP"}
    assert gbp[("open_ar", "all", "all")] == D("250") == gbp[("open_ar_30d_ago", "all", "all")]
    assert gbp[("overdue_ar", "bucket", "91-180")] == D("250")
    assert gbp[("cei_30d", "all", "all")] == D("0")  # a zero numerator is a value
    assert gbp[("collected_30d", "all", "all")] == D("0")
    # no sales in (D−90, D]: a zero denominator is no row, not a zero
    assert not {("dso_90d", "all", "all"), ("best_possible_dso_90d", "all", "all"), ("add_90d", "all", "all")} & set(
        gbp
    )

    usd = {k[1:]: v for k, v in m.items() if k[0] == "USD"}
    assert usd[("dso_90d", "all", "all")] == D("90") == usd[("best_possible_dso_90d", "all", "all")]
    assert usd[("add_90d", "all", "all")] == D("0")
    assert ("cei_30d", "all", "all") not in usd  # 0 + 100 − 100 = 0
    assert ("overdue_held_share", "all", "all") not in usd  # nothing overdue
    assert summary["by_currency"]["EUR"]["dso_90d"] == "146.2500"


def test_open_ar_agrees_with_the_aged_balance(measured):
    db, _ = measured
    m = metrics(db, AS_OF)
    with duckdb.connect(str(db), read_only=True) as con:
        aged = dict(
            con.execute(
                "select currency, sum(amount) filter (where bucket <> 'unapplied_credit') from aged_balance where as_of = ? group by currency",
                [AS_OF],
            ).fetchall()
        )
    assert {c: m[(c, "open_ar", "all", "all")] for c in aged} == aged


def test_recovery_rate_30d_by_stage_channel_and_segment(measured):
    """X1 (call_1, 05-20) claims IA1 1000: open at 05-20 1000, at 06-19 1000 − 400 (PA1) − 100 (CA1 via
    the pool) = 500 → 500 settled, of which the credit note CA1 (issued 06-05, in the window)
    explains 100: 400 recovered (paid), 100 credited. X2 (formal_notice, 04-15) claims IB1 800: 800 on 04-15 and on 05-15
    (PB1 comes 05-20) → 0. X3 (GBP) → 0. X4, X5 (outside the window) and X6 (rejected) are not measured."""
    db, _ = measured
    m = metrics(db, AS_OF)
    rate = {(k[0], k[2], k[3]): v for k, v in m.items() if k[1] == "recovery_rate_30d"}
    assert rate == {
        ("EUR", "stage", "call_1"): D("40.0000"),  # 400 paid; the 100 of CA1 is a credit note, not money
        ("EUR", "stage", "formal_notice"): D("0.0000"),
        ("EUR", "all", "all"): D("22.2222"),  # 400 / 1800
        ("EUR", "mode", "live"): D("22.2222"),
        ("EUR", "channel", "phone"): D("40.0000"),
        ("EUR", "channel", "registered_letter"): D("0.0000"),  # the failed email is not a channel that reached
        ("EUR", "segment", "b2b"): D("40.0000"),
        ("EUR", "segment", "b2c"): D("0.0000"),
        ("GBP", "stage", "call_1"): D("0.0000"),
        ("GBP", "all", "all"): D("0.0000"),
        ("GBP", "mode", "live"): D("0.0000"),
        ("GBP", "channel", "phone"): D("0.0000"),
        ("GBP", "segment", "b2b"): D("0.0000"),
    }  # USD: no measured action → no row
    credit = {(k[0], k[2], k[3]): v for k, v in m.items() if k[1] == "credit_note_rate_30d"}
    assert credit == {
        ("EUR", "all", "all"): D("5.5556"),  # 100 / 1800
        ("EUR", "stage", "call_1"): D("10.0000"),
        ("EUR", "stage", "formal_notice"): D("0.0000"),
        ("EUR", "mode", "live"): D("5.5556"),
        ("GBP", "all", "all"): D("0.0000"),
        ("GBP", "stage", "call_1"): D("0.0000"),
        ("GBP", "mode", "live"): D("0.0000"),
    }
    assert m[("EUR", "recovery_actions_30d", "stage", "call_1")] == 1
    assert m[("EUR", "recovery_actions_30d", "all", "all")] == 2


def test_recovery_by_age_at_the_start_of_the_window(measured):
    """Overdue at D−30: IA1 1000 (52 days, 31-60) → 500 left at D; IB1 600 (89 days, 61-90) → 0 left.
    Overdue at D−90: IB1 800 (29 days, 1-30) → 0 left; IG1 250 (46 days, 31-60) → 250 left."""
    db, _ = measured
    m = metrics(db, AS_OF)
    got = {(k[0], k[1], k[3]): v for k, v in m.items() if k[1].startswith("recovery_by_age")}
    assert got == {
        ("EUR", "recovery_by_age_30d", "31-60"): D("50.0000"),
        ("EUR", "recovery_by_age_30d", "61-90"): D("100.0000"),
        ("EUR", "recovery_by_age_30d", "all"): D("68.7500"),  # 1100 / 1600
        ("EUR", "recovery_by_age_90d", "1-30"): D("100.0000"),
        ("EUR", "recovery_by_age_90d", "all"): D("100.0000"),
        ("GBP", "recovery_by_age_30d", "91-180"): D("0.0000"),
        ("GBP", "recovery_by_age_30d", "all"): D("0.0000"),
        ("GBP", "recovery_by_age_90d", "31-60"): D("0.0000"),
        ("GBP", "recovery_by_age_90d", "all"): D("0.0000"),
    }


def test_holds_ladder_and_the_days_actions(measured):
    db, _ = measured
    m = metrics(db, AS_OF)
    assert m[("EUR", "overdue_held", "hold_kind", "dispute")] == D("500")
    assert m[("EUR", "overdue_held_share", "hold_kind", "dispute")] == D("50.0000")
    assert m[("EUR", "overdue_held_share", "all", "all")] == D("50.0000")
    assert m[("GBP", "overdue_held_share", "all", "all")] == D("0.0000")
    assert ("GBP", "overdue_held_share", "hold_kind", "dispute") not in m

    assert m[("EUR", "units_at_stage", "stage", "reminder_2")] == 1
    assert m[("EUR", "units_in_ladder", "all", "all")] == 1
    assert m[("GBP", "units_held", "all", "all")] == 1
    assert m[("USD", "units_in_ladder", "all", "all")] == 0

    day = {(k[0], k[2], k[3]): v for k, v in m.items() if k[1] == "deliveries_of_day"}
    assert day == {
        ("EUR", "all", "all"): 3,
        ("EUR", "status", "sent"): 1,
        ("EUR", "status", "failed"): 1,
        ("EUR", "status", "undeliverable"): 1,
        ("EUR", "channel", "email"): 1,
        ("EUR", "channel", "sms"): 1,
        ("EUR", "channel", "letter"): 1,
        ("EUR", "channel_status", "email:sent"): 1,
        ("EUR", "channel_status", "sms:failed"): 1,
        ("EUR", "channel_status", "letter:undeliverable"): 1,
        ("GBP", "all", "all"): 1,
        ("GBP", "status", "sending"): 1,
        ("GBP", "channel", "phone"): 1,
        ("GBP", "channel_status", "phone:sending"): 1,
        ("USD", "all", "all"): 0,
    }
    assert m[("EUR", "actions_of_day", "stage", "reminder_2")] == 1
    assert m[("EUR", "amount_claimed_of_day", "all", "all")] == D("500")
    assert m[("USD", "actions_of_day", "all", "all")] == 0


def test_ar_30_days_ago_is_the_source_as_of_then_not_what_a_run_wrote(source_writer, tmp_path):
    """A run on D−30 saw a source without PB1 (200.00 on account on 05-20, recorded late): it wrote
    open_ar 2300 for D−30. On D the source has PB1: AR(D−30) is 2100, from the source as of D−30;
    the D−30 rows stay as that run wrote them."""
    db = tmp_path / "r.duckdb"
    late = source_writer(
        "late",
        customers=CUSTOMERS,
        invoices=INVOICES,
        holds=HOLDS,
        payments=[p for p in PAYMENTS if p["payment_id"] != "PB1"],
    )
    prepare(db, late, date(2026, 5, 31))
    measure(str(db), date(2026, 5, 31))
    assert metrics(db, date(2026, 5, 31))[("EUR", "open_ar", "all", "all")] == D("2300")
    full = source_writer("full", customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    prepare(db, full, AS_OF)
    measure(str(db), AS_OF)
    m = metrics(db, AS_OF)
    assert m[("EUR", "open_ar_30d_ago", "all", "all")] == D("2100")
    assert m[("EUR", "cei_30d", "all", "all")] == D("52.3810")
    assert metrics(db, date(2026, 5, 31))[("EUR", "open_ar", "all", "all")] == D("2300")


def test_rerun_replaces_the_dates_rows(measured):
    db, _ = measured
    before = metrics(db, AS_OF)
    with warehouse.open_db(db) as con:
        con.execute("delete from dunning_actions where action_id = 'X2'")
        con.execute("delete from deliveries where action_id = 'X2'")
    measure(str(db), AS_OF)
    after = metrics(db, AS_OF)
    assert ("EUR", "recovery_rate_30d", "stage", "formal_notice") in before
    assert ("EUR", "recovery_rate_30d", "stage", "formal_notice") not in after  # gone, not left behind
    assert after[("EUR", "recovery_rate_30d", "all", "all")] == D("40.0000")  # X1 alone: 400 paid / 1000
    with duckdb.connect(str(db), read_only=True) as con:
        dup = con.execute(
            """select count(*) from (select currency, metric, dimension, dimension_value from recovery_metrics
               group by all having count(*) > 1)"""
        ).fetchone()[0]
    assert dup == 0


def test_ratio_rounds_half_away_from_zero_and_no_action_means_no_rate(source_writer, tmp_path):
    """An action claims 128.00; 1.00 is paid within 30 days: 1 / 128 × 100 = 0.78125 → 0.7813 (exact
    decimal arithmetic, half away from zero). Without actions in the window, no recovery rate at all."""
    src = source_writer(
        customers=CUSTOMERS[:1],
        invoices=[
            {
                "invoice_id": "R1",
                "customer_id": "A1",
                "issue_date": "2026-03-01",
                "due_date": "2026-03-31",
                "amount": "128.00",
            }
        ],
        payments=[
            {"payment_id": "Q1", "customer_id": "A1", "invoice_id": "R1", "paid_date": "2026-05-10", "amount": "1.00"}
        ],
    )
    db = tmp_path / "r.duckdb"
    prepare(db, src, AS_OF)
    measure(str(db), AS_OF)
    assert not [k for k in metrics(db, AS_OF) if k[1] == "recovery_rate_30d"]
    with warehouse.open_db(db) as con:
        add_action(con, "Z1", date(2026, 5, 1), "A1", "EUR", "reminder_2", 4, "128.00", ["R1"])
    measure(str(db), AS_OF)
    assert metrics(db, AS_OF)[("EUR", "recovery_rate_30d", "stage", "reminder_2")] == D("0.7813")


def test_measure_refuses_a_date_whose_aging_has_not_run(source, tmp_path):
    db = tmp_path / "r.duckdb"
    prepare(db, source, AS_OF)
    with pytest.raises(UserError, match="run the aging of 2026-05-31"):
        measure(str(db), date(2026, 5, 31))


def test_only_real_payments_count_replays_and_credit_notes_apart(source_writer, tmp_path):
    """D = 06-30, window (03-02, 05-31]. A1: R1 100.00 due 04-10, cancelled by the credit note CN1
    100.00 of 04-20. C1: S1 200.00 due 03-31, 150.00 paid on 04-20 (naming it).
    W1 preventive 04-05 (live, email sent) claims R1: settled 100 within 30 days, all by CN1 →
      0 recovered, 100 credited (the bug scored it 100 %).
    W2 call_1 04-08 (live, phone sent) claims S1: 200 → 50 on 05-08: 150 recovered.
    W3 call_1 04-01 (a backfill's: simulated) claims S1: 200 → 50 on 05-01: 150, replay only.
    Real: stage preventive 0 / 100 = 0 %, call_1 150 / 200 = 75 %, all 150 / 300 = 50 %;
    credit notes: 100 / 300 = 33.3333 %, preventive 100 %. Replay apart: 150 / 200 = 75 %."""
    src = source_writer(
        customers=[CUSTOMERS[0], {"customer_id": "C1", "name": "Cie", "segment": "b2b"}],
        invoices=[
            {
                "invoice_id": "R1",
                "customer_id": "A1",
                "issue_date": "2026-03-11",
                "due_date": "2026-04-10",
                "amount": "100.00",
            },
            {
                "invoice_id": "CN1",
                "customer_id": "A1",
                "kind": "credit_note",
                "issue_date": "2026-04-20",
                "due_date": "2026-04-20",
                "amount": "100.00",
            },
            {
                "invoice_id": "S1",
                "customer_id": "C1",
                "issue_date": "2026-03-01",
                "due_date": "2026-03-31",
                "amount": "200.00",
            },
        ],
        payments=[
            {
                "payment_id": "PS1",
                "customer_id": "C1",
                "invoice_id": "S1",
                "paid_date": "2026-04-20",
                "amount": "150.00",
            }
        ],
    )
    db = tmp_path / "r.duckdb"
    prepare(db, src, AS_OF)
    with warehouse.open_db(db) as con:
        add_action(
            con, "W1", date(2026, 4, 5), "A1", "EUR", "preventive", 1, "100.00", ["R1"], deliveries=[("email", "sent")]
        )
        add_action(
            con, "W2", date(2026, 4, 8), "C1", "EUR", "call_1", 3, "200.00", ["S1"], deliveries=[("phone", "sent")]
        )
        add_action(
            con,
            "W3",
            date(2026, 4, 1),
            "C1",
            "EUR",
            "call_1",
            3,
            "200.00",
            ["S1"],
            status="simulated",
            deliveries=[("phone", "simulated")],
        )
    measure(str(db), AS_OF)
    m = {
        k[1:]: v
        for k, v in metrics(db, AS_OF).items()
        if k[0] == "EUR" and k[1] in ("recovery_rate_30d", "credit_note_rate_30d", "recovery_actions_30d")
    }
    assert m == {
        ("recovery_rate_30d", "stage", "preventive"): D("0.0000"),
        ("recovery_rate_30d", "stage", "call_1"): D("75.0000"),
        ("recovery_rate_30d", "all", "all"): D("50.0000"),
        ("recovery_rate_30d", "channel", "email"): D("0.0000"),
        ("recovery_rate_30d", "channel", "phone"): D("75.0000"),
        ("recovery_rate_30d", "segment", "b2b"): D("50.0000"),
        ("recovery_rate_30d", "mode", "live"): D("50.0000"),
        ("recovery_rate_30d", "mode", "replay"): D("75.0000"),
        ("credit_note_rate_30d", "all", "all"): D("33.3333"),
        ("credit_note_rate_30d", "stage", "preventive"): D("100.0000"),
        ("credit_note_rate_30d", "stage", "call_1"): D("0.0000"),
        ("credit_note_rate_30d", "mode", "live"): D("33.3333"),
        ("credit_note_rate_30d", "mode", "replay"): D("0.0000"),
        ("recovery_actions_30d", "all", "all"): D("2"),
        ("recovery_actions_30d", "stage", "preventive"): D("1"),
        ("recovery_actions_30d", "stage", "call_1"): D("1"),
        ("recovery_actions_30d", "channel", "email"): D("1"),
        ("recovery_actions_30d", "channel", "phone"): D("1"),
        ("recovery_actions_30d", "segment", "b2b"): D("2"),
        ("recovery_actions_30d", "mode", "live"): D("2"),
        ("recovery_actions_30d", "mode", "replay"): D("1"),
    }
