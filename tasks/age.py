"""age: the point-in-time view at as_of — open amounts after payments and credits, and the aged balance."""

from __future__ import annotations

from datetime import date

from relance.core.policy import load_policy
from tasks import warehouse
from tasks.step import get_logger, step

#: Each invoice's open amount and hold at a date (dispatch builds them for a send date); the runner
#: builds what they read (int_direct_settlement, int_credit_pool, …) from the SQL (tasks/warehouse.py).
OPEN_AT_TARGETS = ["intermediate/int_open_invoices", "intermediate/int_active_holds"]
#: What age writes.
AGING_TARGETS = ["marts/invoice_snapshot", "marts/aged_balance"]


def write_policy_buckets(con, policy) -> None:
    con.execute(
        "create or replace temp table policy_buckets (position integer, name varchar, min_days integer, max_days integer)"
    )
    con.executemany("insert into policy_buckets values (?, ?, ?, ?)", policy.bucket_rows())


def age_on(con, as_of: date, pol) -> dict:
    """Write invoice_snapshot and aged_balance for as_of on an open connection (a backfill reuses
    one connection for all its dates); returns the day's summary."""
    write_policy_buckets(con, pol)
    timings = warehouse.build(con, AGING_TARGETS, {"as_of": as_of})
    rows = con.execute(
        """
        select currency, count(*) as invoices, sum(open_amount) as open_amount,
               sum(open_amount) filter (where days_past_due > 0) as overdue
        from invoice_snapshot where as_of = $d group by currency order by currency
        """,
        {"d": as_of},
    ).fetchall()
    credit = warehouse.scalar(
        con, "select count(*) from aged_balance where as_of = $d and bucket = 'unapplied_credit'", {"d": as_of}
    )
    return {
        "as_of": as_of.isoformat(),
        "open_invoices": sum(r[1] for r in rows),
        "by_currency": {
            r[0]: {"open_invoices": r[1], "open_amount": str(r[2]), "overdue": str(r[3] or 0)} for r in rows
        },
        "units_with_unapplied_credit": credit,
        "seconds": round(sum(timings.values()), 3),
    }


@step(name="age")
def age(db: str, as_of: date, policy: str | None = None) -> dict:
    """Write invoice_snapshot and aged_balance for as_of (replacing that date's rows)."""
    log = get_logger()
    pol = load_policy(policy)
    with warehouse.open_db(db) as con:
        summary = age_on(con, as_of, pol)
    log.info("age: %d open invoices at %s %s", summary["open_invoices"], as_of, summary["by_currency"])
    return summary
