"""How good were past collection forecasts (issue 16 §4, docs/metrics.md "Expected collections"),
worked by hand on a toy history.

One customer ACME, no paid invoice before 2026-04-07 (class `new`, the currency's average delay:
none paid → 0 days), so each invoice is expected on its due date, or on D + 1 when already past it.

  I1 1000.00 EUR due 04-03 — paid 600.00 on 04-02 (P1) and 400.00 on 04-09 (P2)
  I2  500.00 EUR due 04-20 — paid on 05-15 (P3, after the report date)
  I3  200.00 EUR issued 04-05, due 04-10 — paid on 04-06 (P4): not open at 03-31, yet cash of the window
  U1  100.00 USD due 03-15 — never paid

Forecast of F = 03-31: EUR 7 days (≤ 04-07) I1 1000.00; 30 days (≤ 04-30) I1 + I2 1500.00;
  USD U1 overdue → 04-01: 100.00 for every horizon.
Forecast of 04-07: I1 400.00 open, past its date → 04-08: 7 days (≤ 04-14) 400.00; USD 100.00.
Report of D = 05-01: the windows passed are (03-31, 04-07], (03-31, 04-30] and (04-07, 04-14]
(60 and 90 days from 03-31, 30 days from 04-07 end after 05-01; none of 05-01's has passed).
  03-31, 7 d:  collected P1 600.00 + P4 200.00 = 800.00  → 800 / 1000 = 80.00 %, −200.00
  03-31, 30 d: 600.00 + 200.00 + P2 400.00 = 1200.00      → 1200 / 1500 = 80.00 %, −300.00
  04-07, 7 d:  P2 400.00 → 100.00 %, 0.00
  USD: 100.00 expected, 0.00 collected → 0.00 %, −100.00
The report shows per horizon the latest passed forecast: EUR 7 days → 04-07's, 30 days → 03-31's.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from relance.core.policy import load_policy
from tasks import warehouse
from tasks.age import age
from tasks.ingest import ingest
from tasks.measure import measure
from tasks.report.data import forecast_accuracy, gather
from tests.ladder_helpers import customer, invoice, payment, write_source

F, F2, REPORT_DATE = date(2026, 3, 31), date(2026, 4, 7), date(2026, 5, 1)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accuracy")
    src = write_source(
        tmp / "src",
        customers=[customer("ACME")],
        invoices=[
            invoice("I1", "ACME", "2026-04-03", "1000.00"),
            invoice("I2", "ACME", "2026-04-20", "500.00"),
            invoice("I3", "ACME", "2026-04-10", "200.00", issue="2026-04-05"),
            invoice("U1", "ACME", "2026-03-15", "100.00", currency="USD"),
        ],
        payments=[
            payment("P1", "ACME", "2026-04-02", "600.00", invoice_id="I1"),
            payment("P2", "ACME", "2026-04-09", "400.00", invoice_id="I1"),
            payment("P3", "ACME", "2026-05-15", "500.00", invoice_id="I2"),
            payment("P4", "ACME", "2026-04-06", "200.00", invoice_id="I3"),
        ],
    )
    db = str(tmp / "r.duckdb")
    for day in (F, F2, REPORT_DATE):
        ingest(src, db, day)
        age(db, day)
        measure(db, day)
    with warehouse.open_db(db, read_only=True) as con:
        data = gather(con, REPORT_DATE, load_policy(None), db=db, language="en")
    return db, data


def test_the_forecasts_stored(history):
    db, _ = history
    with warehouse.open_db(db, read_only=True) as con:
        rows = con.execute(
            """select as_of, currency, horizon_days, expected_amount from cash_forecast
               where as_of < '2026-05-01' and horizon_days in (7, 30) order by as_of, currency, horizon_days"""
        ).fetchall()
    assert rows == [
        (F, "EUR", 7, D("1000.00")),
        (F, "EUR", 30, D("1500.00")),
        (F, "USD", 7, D("100.00")),
        (F, "USD", 30, D("100.00")),
        (F2, "EUR", 7, D("400.00")),
        (F2, "EUR", 30, D("900.00")),
        (F2, "USD", 7, D("100.00")),
        (F2, "USD", 30, D("100.00")),
    ]


def test_collected_in_each_passed_window(history):
    _, data = history
    assert [
        (r["forecast_date"], r["currency"], r["horizon_days"], r["expected_amount"], r["collected_amount"])
        for r in data.accuracy
    ] == [
        (F, "EUR", 7, D("1000.00"), D("800.00")),
        (F2, "EUR", 7, D("400.00"), D("400.00")),
        (F, "EUR", 30, D("1500.00"), D("1200.00")),
        (F, "USD", 7, D("100.00"), D("0.00")),
        (F2, "USD", 7, D("100.00"), D("0.00")),
        (F, "USD", 30, D("100.00"), D("0.00")),
    ]


def test_latest_passed_forecast_per_horizon(history):
    _, data = history
    assert [
        (r["horizon_days"], r["forecast_date"], r["difference"], r["ratio"]) for r in forecast_accuracy(data, "EUR")
    ] == [(7, F2, D("0.00"), D("100.00")), (30, F, D("-300.00"), D("80.00"))]
    assert [(r["horizon_days"], r["difference"], r["ratio"]) for r in forecast_accuracy(data, "USD")] == [
        (7, D("-100.00"), D("0.00")),
        (30, D("-100.00"), D("0.00")),
    ]
    # the forecast of the report date itself: no window has passed, it is shown as expected
    assert {(r["currency"], r["horizon_days"]) for r in data.forecast} >= {("EUR", 7), ("USD", 90)}


def test_each_passed_window_its_difference_and_ratio(history):
    from tasks.report.data import accuracy_row

    _, data = history
    first = accuracy_row(data.accuracy[0])
    assert (first["forecast_date"], first["horizon_days"], first["difference"], first["ratio"]) == (
        F,
        7,
        D("-200.00"),
        D("80.00"),
    )


def test_report_and_workbook_show_the_forecast_beside_its_past(history, tmp_path):
    from openpyxl import load_workbook

    from tasks.report import report

    db, _ = history
    out = report(db, REPORT_DATE, str(tmp_path), language="en")
    page = open(out["html"], encoding="utf-8").read()
    section = page[page.index('<section class="forecast">') : page.index('<section class="profiles">')]
    # 30 days: expected now (I2 500.00 open, due 04-20, past → 05-02), the forecast of 03-31 beside it
    assert "next 30 days" in section and "31 Mar 2026" in section and "€1,500.00" in section
    assert "€1,200.00" in section and "80.0%" in section
    assert "7 Apr 2026" in section and "100.0%" in section  # 7 days: 04-07's
    ws = load_workbook(out["xlsx"])["Forecast"]
    rows = [tuple(c.value for c in r) for r in ws.iter_rows(min_row=2)]
    assert ("EUR", "past forecast", "2026-03-31", 30, 1500.0, None, 1200.0, -300.0, 0.8) in rows
    assert ("USD", "past forecast", "2026-04-07", 7, 100.0, None, 0.0, -100.0, 0.0) in rows
