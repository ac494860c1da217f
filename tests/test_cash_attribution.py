"""Cash collected attributed to the last step before each payment (issue 14 §4, docs/metrics.md
"Cash collected by the last step before it"), worked by hand.

D = 2026-06-30: the payments of (05-31, 06-30] count. EUR only.

C1: I1 1000.00 issued 03-01 due 03-31. Its steps:
  A1 05-20 due (email sent)                 — an outcome of it said 06-08 by Marc
  A2 06-10 call_1 (phone sent)              — an outcome of it said 06-10 by Claire
  A3 06-15 reminder_2 simulated (a backfill's replay: not a real step)
  A4 06-20 formal_notice rejected at approval (never reached the debtor)
C2: I2 600.00 issued 03-01 due 03-31. Its step:
  A5 06-15 reminder_2, SMS sent 08:00 then email 09:00 (the SMS reached the debtor first)

Payments and their last real step before the payment's day:
  P0 C2 500.00 05-20  outside the window                          — not counted
  P1 C1 100.00 06-05  A1: due, email; Marc spoke on 06-08, later  — collector none
  P4 C1  30.00 06-10  A2 is of the same day → A1: due, email, Marc
  P2 C1 250.00 06-12  A2: call_1, phone, Claire
  P3 C1  50.00 06-22  A3 and A4 do not count → A2: call_1, phone, Claire
  P5 C2 200.00 06-15  A5 is of the same day, nothing before → none, none, none
  P6 C2  75.00 06-20  A5: reminder_2, sms, none

collected_30d = 100 + 30 + 250 + 50 + 200 + 75 = 705.00
by stage:     due 130, call_1 300, reminder_2 75, none 200          (sum 705)
by channel:   email 130, phone 300, sms 75, none 200                 (sum 705)
by collector: Marc 30, Claire 300, none 100 + 200 + 75 = 375          (sum 705)
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

from tasks import warehouse
from tasks.measure import measure
from tests.test_metrics import add_action, metrics, prepare

AS_OF = date(2026, 6, 30)
CUSTOMERS = [{"customer_id": "C1", "name": "Client Un"}, {"customer_id": "C2", "name": "Client Deux"}]
INVOICES = [
    {
        "invoice_id": "I1",
        "customer_id": "C1",
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "amount": "1000.00",
    },
    {"invoice_id": "I2", "customer_id": "C2", "issue_date": "2026-03-01", "due_date": "2026-03-31", "amount": "600.00"},
]
PAYMENTS = [
    {"payment_id": "P0", "customer_id": "C2", "paid_date": "2026-05-20", "amount": "500.00"},
    {"payment_id": "P1", "customer_id": "C1", "paid_date": "2026-06-05", "amount": "100.00"},
    {"payment_id": "P4", "customer_id": "C1", "paid_date": "2026-06-10", "amount": "30.00"},
    {"payment_id": "P2", "customer_id": "C1", "paid_date": "2026-06-12", "amount": "250.00"},
    {"payment_id": "P3", "customer_id": "C1", "paid_date": "2026-06-22", "amount": "50.00"},
    {"payment_id": "P5", "customer_id": "C2", "paid_date": "2026-06-15", "amount": "200.00"},
    {"payment_id": "P6", "customer_id": "C2", "paid_date": "2026-06-20", "amount": "75.00"},
]


def _outcome(con, outcome_id, customer, said_on, by, action_id):
    con.execute(
        """insert into outcomes (outcome_id, customer_id, currency, kind, said_on, action_id, source, recorded_by,
                                 recorded_at)
           values (?, ?, 'EUR', 'reached', ?, ?, 'cli', ?, ?)""",
        [outcome_id, customer, said_on, action_id, by, datetime(2026, 7, 1)],
    )


def test_cash_attributed_to_the_last_real_step(source_writer, tmp_path):
    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS)
    db = tmp_path / "r.duckdb"
    prepare(db, src, AS_OF)
    with warehouse.open_db(db) as con:
        add_action(
            con, "A1", date(2026, 5, 20), "C1", "EUR", "due", 2, "1000.00", ["I1"], deliveries=[("email", "sent")]
        )
        add_action(
            con, "A2", date(2026, 6, 10), "C1", "EUR", "call_1", 3, "900.00", ["I1"], deliveries=[("phone", "sent")]
        )
        add_action(
            con,
            "A3",
            date(2026, 6, 15),
            "C1",
            "EUR",
            "reminder_2",
            4,
            "650.00",
            ["I1"],
            status="simulated",
            deliveries=[("email", "simulated")],
        )
        add_action(
            con,
            "A4",
            date(2026, 6, 20),
            "C1",
            "EUR",
            "formal_notice",
            6,
            "650.00",
            ["I1"],
            status="rejected",
            deliveries=[("registered_letter", "skipped")],
        )
        add_action(
            con,
            "A5",
            date(2026, 6, 15),
            "C2",
            "EUR",
            "reminder_2",
            4,
            "100.00",
            ["I2"],
            deliveries=[("email", "sent"), ("sms", "sent")],
        )
        con.execute("update deliveries set sent_at = ? where delivery_id = 'A5|sms'", [datetime(2026, 6, 15, 8)])
        con.execute("update deliveries set sent_at = ? where delivery_id = 'A5|email'", [datetime(2026, 6, 15, 9)])
        _outcome(con, "O1", "C1", date(2026, 6, 8), "Marc", "A1")
        _outcome(con, "O2", "C1", date(2026, 6, 10), "Claire", "A2")
    measure(str(db), AS_OF)

    m = metrics(db, AS_OF)
    cash = {(dim, val): v for (cur, metric, dim, val), v in m.items() if metric == "cash_attributed_30d"}
    assert cash == {
        ("stage", "due"): D("130.00"),
        ("stage", "call_1"): D("300.00"),
        ("stage", "reminder_2"): D("75.00"),
        ("stage", "none"): D("200.00"),
        ("channel", "email"): D("130.00"),
        ("channel", "phone"): D("300.00"),
        ("channel", "sms"): D("75.00"),
        ("channel", "none"): D("200.00"),
        ("collector", "Marc"): D("30.00"),
        ("collector", "Claire"): D("300.00"),
        ("collector", "none"): D("375.00"),
    }
    assert all(isinstance(v, D) for v in cash.values())
    collected = m[("EUR", "collected_30d", "all", "all")]
    assert collected == D("705.00")
    for dim in ("stage", "channel", "collector"):  # each dimension adds up to the cash collected
        assert sum(v for (d, _), v in cash.items() if d == dim) == collected

    # the model, payment by payment (its key holds: one row per payment of the window)
    with warehouse.open_db(db) as con:
        warehouse.build(con, "intermediate/int_metrics_cash_attribution", {"as_of": AS_OF})
        assert warehouse.check_model(con, "intermediate/int_metrics_cash_attribution", {"as_of": AS_OF}) == []
        rows = {
            r[0]: r[1:]
            for r in con.execute(
                "select payment_id, action_id, stage, channel, collector from int_metrics_cash_attribution"
            ).fetchall()
        }
    assert rows == {
        "P1": ("A1", "due", "email", "none"),
        "P4": ("A1", "due", "email", "Marc"),
        "P2": ("A2", "call_1", "phone", "Claire"),
        "P3": ("A2", "call_1", "phone", "Claire"),
        "P5": (None, "none", "none", "none"),
        "P6": ("A5", "reminder_2", "sms", "none"),
    }
