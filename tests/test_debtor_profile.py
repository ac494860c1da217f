"""The payment-behaviour profile of each debtor (issue 16 §1, docs/metrics.md "Debtor profile")
and the credit watch (§5), worked by hand.

as_of 2026-03-31 (Tue): the last 12 months are payments completing an invoice in
(2025-03-31, 2026-03-31]; the last 3 months (2025-12-31, 2026-03-31], the 9 before
(2025-03-31, 2025-12-31]. Default policy: at least 3 paid invoices, A ≥ 80, B ≥ 60, C ≥ 40,
else D; credit watch: class D or an invoice more than 60 days overdue.

GOOD (EUR) — G1 1000.00 due 2025-06-30 paid on it, G2 1000.00 due 2025-10-31 paid early
  (10-25: 0 days late), G3 2000.00 due 2026-02-28 paid on it; G4 500.00 due 2026-04-30 open.
  avg days late 0.00, shares 0.00, trend 0.00 − 0.00; open 500.00, overdue 0.00 → 100 → A.

SLOW (EUR) — S0 1000.00 due 2025-01-31 paid 2025-03-01 (before the 12 months: not counted);
  S1 1000.00 due 2025-05-31 paid 06-10 (10 days late); S2 3000.00 due 2025-09-30 paid 1000.00 on
  10-01 and 2000.00 on 11-09 (paid on 11-09: 40 days late); S3 1000.00 due 2026-01-31 paid
  03-12 (40 days, last 3 months); S4 2000.00 due 2026-01-15, 500.00 paid 02-20 (1500.00 open, 75
  days overdue); S5 500.00 due 2026-04-15 (open, not due).
  avg days late (1000×10 + 3000×40 + 1000×40) / 5000 = 170000 / 5000 = 34.00
  share paid late 3/3 = 100.00 %; more than 30 days late 2/3 = 66.67 %
  last 3 months 40.00; the 9 before (10000 + 120000) / 4000 = 32.50; trend +7.50
  open 2000.00, overdue 1500.00 → 75.00 %
  score 100 − 34.00 − 100.00×0.20 − 66.67×0.20 − 75.00×0.10 − min(7.50×0.5, 10)
        = 100 − 34 − 20 − 13.334 − 7.5 − 3.75 = 21.416 → 21 → D; credit watch: class, overdue

MID (EUR) — M1 2000.00 due 2025-07-31 paid 08-05 (5 late); M2 2000.00 due 2025-10-31 paid on it;
  M3 1000.00 due 2026-01-31 paid 02-20 (20 late, last 3 months); M4 1000.00 due 2026-03-01 open
  (30 days overdue; its payment of 04-05 comes after as_of: not known then); M5 3000.00 due
  2026-04-30 open.
  avg (2000×5 + 1000×20) / 5000 = 6.00; late 2/3 = 66.67 %; over 30 days 0.00 %
  last 3 months 20.00; 9 before 10000 / 4000 = 2.50; trend +17.50 → 8.75 points
  open 4000.00, overdue 1000.00 → 25.00 %
  score 100 − 6 − 13.334 − 0 − 2.5 − 8.75 = 69.416 → 69 → B

NEWCO (EUR) — N1 100.00 due 2026-01-31 paid 02-05, N2 100.00 due 2026-02-28 paid on it, N3 300.00
  due 2026-03-10 open (21 days): 2 paid invoices < 3 → new, no score.
GOOD (USD) — U1 100.00 due 2025-12-01 open, 120 days overdue: new; credit watch: overdue.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from tasks.age import age
from tasks.ingest import ingest
from tasks.measure import measure
from tests.ladder_helpers import customer, invoice, payment, query, write_source

AS_OF = date(2026, 3, 31)


def _inv(i, c, due, amount, currency="EUR"):
    return invoice(i, c, due, amount, currency=currency)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    src = write_source(
        tmp / "src",
        customers=[customer("GOOD"), customer("SLOW"), customer("MID"), customer("NEWCO")],
        invoices=[
            _inv("G1", "GOOD", "2025-06-30", "1000.00"),
            _inv("G2", "GOOD", "2025-10-31", "1000.00"),
            _inv("G3", "GOOD", "2026-02-28", "2000.00"),
            _inv("G4", "GOOD", "2026-04-30", "500.00"),
            _inv("U1", "GOOD", "2025-12-01", "100.00", "USD"),
            _inv("S0", "SLOW", "2025-01-31", "1000.00"),
            _inv("S1", "SLOW", "2025-05-31", "1000.00"),
            _inv("S2", "SLOW", "2025-09-30", "3000.00"),
            _inv("S3", "SLOW", "2026-01-31", "1000.00"),
            _inv("S4", "SLOW", "2026-01-15", "2000.00"),
            _inv("S5", "SLOW", "2026-04-15", "500.00"),
            _inv("M1", "MID", "2025-07-31", "2000.00"),
            _inv("M2", "MID", "2025-10-31", "2000.00"),
            _inv("M3", "MID", "2026-01-31", "1000.00"),
            _inv("M4", "MID", "2026-03-01", "1000.00"),
            _inv("M5", "MID", "2026-04-30", "3000.00"),
            _inv("N1", "NEWCO", "2026-01-31", "100.00"),
            _inv("N2", "NEWCO", "2026-02-28", "100.00"),
            _inv("N3", "NEWCO", "2026-03-10", "300.00"),
        ],
        payments=[
            payment("PG1", "GOOD", "2025-06-30", "1000.00", invoice_id="G1"),
            payment("PG2", "GOOD", "2025-10-25", "1000.00", invoice_id="G2"),
            payment("PG3", "GOOD", "2026-02-28", "2000.00", invoice_id="G3"),
            payment("PS0", "SLOW", "2025-03-01", "1000.00", invoice_id="S0"),
            payment("PS1", "SLOW", "2025-06-10", "1000.00", invoice_id="S1"),
            payment("PS2a", "SLOW", "2025-10-01", "1000.00", invoice_id="S2"),
            payment("PS2b", "SLOW", "2025-11-09", "2000.00", invoice_id="S2"),
            payment("PS3", "SLOW", "2026-03-12", "1000.00", invoice_id="S3"),
            payment("PS4", "SLOW", "2026-02-20", "500.00", invoice_id="S4"),
            payment("PM1", "MID", "2025-08-05", "2000.00", invoice_id="M1"),
            payment("PM2", "MID", "2025-10-31", "2000.00", invoice_id="M2"),
            payment("PM3", "MID", "2026-02-20", "1000.00", invoice_id="M3"),
            payment("PM4", "MID", "2026-04-05", "1000.00", invoice_id="M4"),  # after as_of
            payment("PN1", "NEWCO", "2026-02-05", "100.00", invoice_id="N1"),
            payment("PN2", "NEWCO", "2026-02-28", "100.00", invoice_id="N2"),
        ],
    )
    db = str(tmp / "r.duckdb")
    ingest(src, db, AS_OF)
    age(db, AS_OF)
    summary = measure(db, AS_OF)
    return db, summary


def test_scores_and_classes_by_hand(measured):
    db, summary = measured
    rows = query(
        db,
        """
        select customer_id, currency, paid_invoices, paid_late, paid_late_30, paid_amount, avg_days_late,
               share_paid_late, share_paid_late_30, avg_days_late_3m, avg_days_late_prev_9m, trend_days,
               open_amount, overdue_amount, overdue_share, max_days_past_due, score, risk_class
        from debtor_profile where as_of = '2026-03-31' order by customer_id, currency""",
    )
    assert rows == [
        (
            "GOOD",
            "EUR",
            3,
            0,
            0,
            D("4000.00"),
            D("0.00"),
            D("0.00"),
            D("0.00"),
            D("0.00"),
            D("0.00"),
            D("0.00"),
            D("500.00"),
            D("0.00"),
            D("0.00"),
            None,
            100,
            "A",
        ),
        (
            "GOOD",
            "USD",
            0,
            0,
            0,
            D("0.00"),
            None,
            None,
            None,
            None,
            None,
            None,
            D("100.00"),
            D("100.00"),
            D("100.00"),
            120,
            None,
            "new",
        ),
        (
            "MID",
            "EUR",
            3,
            2,
            0,
            D("5000.00"),
            D("6.00"),
            D("66.67"),
            D("0.00"),
            D("20.00"),
            D("2.50"),
            D("17.50"),
            D("4000.00"),
            D("1000.00"),
            D("25.00"),
            30,
            69,
            "B",
        ),
        (
            "NEWCO",
            "EUR",
            2,
            1,
            0,
            D("200.00"),
            D("2.50"),
            D("50.00"),
            D("0.00"),
            D("2.50"),
            None,
            None,
            D("300.00"),
            D("300.00"),
            D("100.00"),
            21,
            None,
            "new",
        ),
        (
            "SLOW",
            "EUR",
            3,
            3,
            2,
            D("5000.00"),
            D("34.00"),
            D("100.00"),
            D("66.67"),
            D("40.00"),
            D("32.50"),
            D("7.50"),
            D("2000.00"),
            D("1500.00"),
            D("75.00"),
            75,
            21,
            "D",
        ),
    ]
    assert summary["risk_classes"] == {"A": 1, "B": 1, "D": 1, "new": 2}


def test_broken_promises_and_disputes_lower_the_score(measured, tmp_path):
    """What debtors said, in the 12 months up to as_of, from int_outcome_status of as_of (default
    policy: a promise holds to its date + 3 days and is broken the day after if nothing covers it):
    − min(10 × broken_promises, 30) − min(5 × disputes, 15), disputes resolved
    credit_note_expected (the debtor was right) not counted.

    GOOD (EUR), 100 without outcomes, pays nothing after 02-28:
      promise 03-02 of 500.00 by 03-06 → held to 03-09, broken on 03-10;
      promise 03-16 of 500.00 by 03-20 → held to 03-23, broken on 03-24   → 2 broken
      dispute 03-05 of G4, resolved credit_note_expected on 03-12          → not counted
      score 100 − min(20, 30) − 0 = 80 → A (still: 80 ≥ 80)
    MID (EUR), 69.416 without outcomes (B):
      dispute 03-10 of M4, resolved rejected on 03-20; dispute 03-25 of M5, open → 2 disputes
      promise 03-25 of 1000.00 by 04-03: pending on 03-31 (held to 04-06) → not broken (yet)
      score 69.416 − 0 − min(10, 15) = 59.416 → 59 → C
    NEWCO (EUR, new): plan 03-11 for N3, 100.00 on 03-15 and 200.00 on 03-25, nothing paid: the
      first instalment's grace ends 03-18, broken on 03-19 → 1 broken, no score (new) to lower;
      on the credit watch with reason `plan` (its latest plan is broken, within 12 months)
    A month later (04-30) MID's promise was kept (PM4 1000.00 on 04-05 ≤ 04-06): still 0 broken,
    2 disputes: 59.17 (tests below: test_report_shows_classes_movers_and_credit_watch) − 10 =
    49.17 → 49, C. SLOW and GOOD (USD) have no outcome: unchanged (21 D, new)."""
    import shutil
    from pathlib import Path

    from tasks import outcomes

    db0, _ = measured
    db = str(tmp_path / "r.duckdb")
    shutil.copy(db0, db)

    def said(on, **fields):
        record = outcomes.resolve if "resolution" in fields else outcomes.add
        record(db, {"on": on, "by": "julie", **fields}, today=date.fromisoformat(on))

    said("2026-03-02", customer="GOOD", currency="EUR", kind="promise", amount="500.00", date="2026-03-06")
    said("2026-03-05", customer="GOOD", currency="EUR", kind="dispute", invoices="G4", reason="price")
    said("2026-03-10", customer="MID", kind="dispute", invoices="M4", reason="quality")
    said("2026-03-11", customer="NEWCO", kind="plan", invoices="N3", instalments="2026-03-15:100.00,2026-03-25:200.00")
    said("2026-03-12", customer="GOOD", resolution="credit_note_expected")
    said("2026-03-16", customer="GOOD", currency="EUR", kind="promise", amount="500.00", date="2026-03-20")
    said("2026-03-20", customer="MID", resolution="rejected")
    said("2026-03-25", customer="MID", kind="dispute", invoices="M5", reason="price")
    said("2026-03-25", customer="MID", kind="promise", amount="1000.00", date="2026-04-03")
    measure(db, AS_OF)  # re-measuring the date replaces its rows
    profile = """select customer_id, currency, broken_promises, disputes, score, risk_class from debtor_profile
                 where as_of = $d order by customer_id, currency"""
    assert query(db, profile, {"d": AS_OF}) == [
        ("GOOD", "EUR", 2, 0, 80, "A"),
        ("GOOD", "USD", 0, 0, None, "new"),
        ("MID", "EUR", 0, 2, 59, "C"),
        ("NEWCO", "EUR", 1, 0, None, "new"),
        ("SLOW", "EUR", 0, 0, 21, "D"),
    ]
    assert query(
        db, "select customer_id, currency, reasons from credit_watch where as_of = $d order by 1, 2", {"d": AS_OF}
    ) == [("GOOD", "USD", "overdue"), ("NEWCO", "EUR", "plan"), ("SLOW", "EUR", "class,overdue")]
    day = date(2026, 4, 30)
    ingest(str(Path(db0).parent / "src"), db, day)
    age(db, day)
    measure(db, day)
    assert query(db, profile, {"d": day})[2] == ("MID", "EUR", 0, 2, 49, "C")


def test_credit_watch_class_d_or_long_overdue(measured):
    db, summary = measured
    assert query(
        db,
        """select customer_id, currency, risk_class, score, overdue_amount, max_days_past_due, reasons
                        from credit_watch where as_of = '2026-03-31' order by customer_id, currency""",
    ) == [
        ("GOOD", "USD", "new", None, D("100.00"), 120, "overdue"),
        ("SLOW", "EUR", "D", 21, D("1500.00"), 75, "class,overdue"),
    ]
    assert summary["credit_watch"] == 2


def test_credit_watch_and_cash_forecast_artifacts(measured):
    """The nightly run's Prefect artifacts `relance-credit-watch` and `relance-cash-forecast`, as plain
    strings (a table artifact rejects Decimal and date): the credit watch above (largest overdue
    first per currency) and the forecast of test_expected_payment_dates_and_collections, each
    horizon's last day = 03-31 + 7, 30, 60, 90 days = 04-07, 04-30, 05-30, 06-29."""
    import json

    from tasks.report import artifact_content

    db, _ = measured
    content = artifact_content(db, AS_OF, {})
    json.dumps(content)  # no Decimal, no date
    assert content["credit_watch"] == [
        {
            "customer_id": "SLOW",
            "name": "Client SLOW",
            "currency": "EUR",
            "risk_class": "D",
            "score": "21",
            "reason": "risk class D; overdue more than 60 days",
            "overdue": "1500.00",
            "oldest_days_past_due": "75",
        },
        {
            "customer_id": "GOOD",
            "name": "Client GOOD",
            "currency": "USD",
            "risk_class": "new",
            "score": "",
            "reason": "overdue more than 60 days",
            "overdue": "100.00",
            "oldest_days_past_due": "120",
        },
    ]
    assert [
        (r["currency"], r["within_days"], r["until"], r["expected"], r["invoices"]) for r in content["cash_forecast"]
    ] == [
        ("EUR", "7", "2026-04-07", "2800.00", "3"),
        ("EUR", "30", "2026-04-30", "3300.00", "4"),
        ("EUR", "60", "2026-05-30", "6800.00", "6"),
        ("EUR", "90", "2026-06-29", "6800.00", "6"),
        ("USD", "7", "2026-04-07", "100.00", "1"),
        ("USD", "30", "2026-04-30", "100.00", "1"),
        ("USD", "60", "2026-05-30", "100.00", "1"),
        ("USD", "90", "2026-06-29", "100.00", "1"),
    ]
    # a date with no profile measured: no credit-watch table (rather than an empty one that says "none")
    assert artifact_content(db, date(2026, 3, 30), {})["credit_watch"] is None


def test_class_thresholds_must_decrease(tmp_path):
    """class_a_min_score > class_b_min_score > class_c_min_score, or the policy is refused, naming the keys."""
    from relance.core.errors import PolicyError
    from relance.core.policy import load_policy

    bad = tmp_path / "bad.yaml"
    default = (__import__("pathlib").Path(__file__).resolve().parent.parent / "policies" / "default.yaml").read_text(
        encoding="utf-8"
    )
    bad.write_text(default.replace("class_b_min_score: 60", "class_b_min_score: 90"), encoding="utf-8")
    with pytest.raises(PolicyError, match="class_a_min_score"):
        load_policy(str(bad))


def test_expected_payment_dates_and_collections(measured):
    """Each open invoice is expected at its due date + its debtor's average days late (whole days,
    half-up), a `new` debtor the currency's: EUR (0.00×4000 + 34.00×5000 + 6.00×5000 + 2.50×200) /
    14200 = 14.12 → 14 days; USD has no paid invoice → 0. Already past it → the next day (04-01).
      G4  500.00 due 04-30 + 0  → 04-30        S4 1500.00 due 01-15 + 34 → 02-18 → 04-01
      S5  500.00 due 04-15 + 34 → 05-19        M4 1000.00 due 03-01 + 6  → 03-07 → 04-01
      M5 3000.00 due 04-30 + 6  → 05-06        N3  300.00 due 03-10 + 14 → 03-24 → 04-01
      U1  100.00 USD due 2025-12-01 + 0 → 04-01
    Within 7 days (≤ 04-07): EUR 2800.00 (3), USD 100.00; 30 (≤ 04-30): EUR 3300.00 (4);
    60 (≤ 05-30) and 90: EUR 6800.00 (6)."""
    db, _ = measured
    assert query(
        db,
        """select invoice_id, basis, expected_days_late, expected_date::varchar from expected_payments
                        where as_of = '2026-03-31' order by invoice_id""",
    ) == [
        ("G4", "debtor", 0, "2026-04-30"),
        ("M4", "debtor", 6, "2026-04-01"),
        ("M5", "debtor", 6, "2026-05-06"),
        ("N3", "currency", 14, "2026-04-01"),
        ("S4", "debtor", 34, "2026-04-01"),
        ("S5", "debtor", 34, "2026-05-19"),
        ("U1", "currency", 0, "2026-04-01"),
    ]
    assert query(
        db,
        """select currency, horizon_days, expected_amount, invoice_count from cash_forecast
                        where as_of = '2026-03-31' order by currency, horizon_days""",
    ) == [
        ("EUR", 7, D("2800.00"), 3),
        ("EUR", 30, D("3300.00"), 4),
        ("EUR", 60, D("6800.00"), 6),
        ("EUR", 90, D("6800.00"), 6),
        ("USD", 7, D("100.00"), 1),
        ("USD", 30, D("100.00"), 1),
        ("USD", 60, D("100.00"), 1),
        ("USD", 90, D("100.00"), 1),
    ]


def test_unit_stage_shows_the_latest_profile_measured(measured):
    """The ladder of 04-01 (measure runs after it) shows the profile of 03-31 on each unit."""
    from tests.ladder_helpers import run_days, unit

    db, _ = measured
    run_days(None, db, ["2026-04-01"])
    slow, mid, good_usd = (
        unit(db, "2026-04-01", "SLOW"),
        unit(db, "2026-04-01", "MID"),
        unit(db, "2026-04-01", "GOOD", "USD"),
    )
    assert (slow["risk_score"], slow["risk_class"], slow["profile_as_of"]) == (21, "D", AS_OF)
    assert (mid["risk_score"], mid["risk_class"]) == (69, "B")
    assert (good_usd["risk_score"], good_usd["risk_class"]) == (None, "new")


def test_report_shows_classes_movers_and_credit_watch(measured, tmp_path):
    """A month later (04-30, the source as known then) MID has paid M4 on 04-05, 35 days late:
    paid M1 (5 days), M2 (0), M3 (20), M4 (35) in the 12 months: avg (2000×5 + 1000×20 + 1000×35) /
    6000 = 10.83; late 3/4 = 75.00 %; over 30 days 1/4 = 25.00 %; overdue 0 (M5 due 04-30);
    last 3 months (20000 + 35000) / 2000 = 27.50, the 9 before 2.50, trend +25.00 → 10 points (cap)
    score 100 − 10.83 − 15 − 5 − 0 − 10 = 59.17 → 59 → C: MID moved B → C, the only mover.
    On 04-30, EUR: A GOOD (500.00), C MID (3000.00), D SLOW (2000.00, all overdue), new NEWCO
    (300.00); USD: new GOOD (100.00). Credit watch: SLOW (D, 105 days), GOOD USD (150 days);
    NEWCO's N3 is 51 days overdue: not watched."""
    import shutil
    from pathlib import Path

    from openpyxl import load_workbook

    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.report import report
    from tasks.report.data import gather

    db0, _ = measured
    db = str(tmp_path / "r.duckdb")
    shutil.copy(db0, db)
    day = date(2026, 4, 30)
    src = str(Path(db0).parent / "src")
    ingest(src, db, day)
    age(db, day)
    measure(db, day)
    with warehouse.open_db(db, read_only=True) as con:
        previous = con.execute("select max(as_of) from debtor_profile where as_of < '2026-04-30'").fetchone()[0]
        data = gather(con, day, load_policy(None), db=db, language="en")
    assert {
        (r["currency"], r["risk_class"]): (r["units"], r["open_amount"], r["watched_units"]) for r in data.risk_classes
    } == {
        ("EUR", "A"): (1, D("500.00"), 0),
        ("EUR", "C"): (1, D("3000.00"), 0),
        ("EUR", "D"): (1, D("2000.00"), 1),
        ("EUR", "new"): (1, D("300.00"), 0),
        ("USD", "new"): (1, D("100.00"), 1),
    }
    assert [
        (
            r["customer_id"],
            r["currency"],
            r["previous_as_of"],
            r["previous_class"],
            r["risk_class"],
            r["previous_score"],
            r["score"],
        )
        for r in data.movers
    ] == [("MID", "EUR", previous, "B", "C", 69, 59)]
    out = report(db, day, str(tmp_path / "out"), language="en")
    page = Path(out["html"]).read_text(encoding="utf-8")
    profiles = page[page.index('<section class="profiles">') : page.index('<section class="ladder">')]
    assert "1 debtor on credit watch (hold new orders)" in profiles
    assert "Client MID" in profiles and "B → C" in profiles and "69 → 59" in profiles
    assert "New (too little history)" in profiles
    book = load_workbook(out["xlsx"])
    movers = [tuple(c.value for c in r) for r in book["Class changes"].iter_rows(min_row=2)]
    assert movers == [("MID", "Client MID", "EUR", previous.isoformat(), "B", "C", 69, 59, 3000.0, 0.0)]
    classes = [tuple(c.value for c in r) for r in book["Profiles"].iter_rows(min_row=2)]
    assert ("EUR", "D", 1, 2000.0, 2000.0, 1) in classes and (
        "USD",
        "New (too little history)",
        1,
        100.0,
        100.0,
        1,
    ) in classes


def test_a_nightly_builds_the_profile_once_and_a_rerun_on_a_corrected_source_builds_it_again(measured, tmp_path):
    """The default policy's ladder rules read the risk class, so the nightly's ladder step builds the
    profile of as_of; measure, later in the same run, reads it (its rows carry the run's id) instead
    of building it again — same figures as measure alone (the fixture: SLOW 21 D, MID 69 B). A second
    run of the date after the source was corrected (SLOW pays S4's 1500.00 on 03-30) builds it again:
    SLOW owes nothing overdue any more (S4 now counts as paid 74 days late)."""
    import csv
    import json
    import shutil
    from pathlib import Path

    from flows.nightly import nightly_run
    from tests.ladder_helpers import COLUMNS

    db0, _ = measured
    src = tmp_path / "src"
    shutil.copytree(Path(db0).parent / "src", src)
    db = str(tmp_path / "r.duckdb")
    profile = """select customer_id, currency, score, risk_class, overdue_amount from debtor_profile
                 where as_of = $d order by customer_id, currency"""

    def run() -> tuple[str, int]:
        nightly_run(as_of=AS_OF, source=str(src), db=db, allow_stale=True)
        run_id, counts = query(
            db, "select run_id, step_counts from runs where kind = 'nightly' order by started_at desc limit 1"
        )[0]
        built = query(db, "select distinct built_by_run from debtor_profile where as_of = $d", {"d": AS_OF})
        assert built == [(run_id,)]
        return run_id, json.loads(counts)["measure"]["profiles_built"]

    first, built_by_measure = run()
    assert built_by_measure == 0
    assert query(db, profile, {"d": AS_OF}) == query(db0, profile, {"d": AS_OF})
    with (src / "payments.csv").open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=COLUMNS["payments"]).writerow(
            payment("PS4b", "SLOW", "2026-03-30", "1500.00", invoice_id="S4")
        )
    second, built_by_measure = run()
    assert second != first and built_by_measure == 0
    slow = [r for r in query(db, profile, {"d": AS_OF}) if r[0] == "SLOW"]
    assert slow[0][4] == D("0.00")
