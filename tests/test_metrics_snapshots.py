"""measure reads the point-in-time views of the dates a backfill has aged (their invoice_snapshot and
aged_balance) instead of allocating them again: the rows of recovery_metrics must be the very same.

On a generated sample (credit notes, payments naming an invoice, partial payments, payments on
account, holds, several currencies), two measured dates D1 and D2 and hand-placed dunning actions
claiming what was open on their dates: every figure is compared between the allocation path (no
snapshot dates, as a nightly run), the snapshot path (every needed date aged from the same ingest)
and a mix of both.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from relance.core.policy import load_policy
from relance.sample_data import generate
from tasks import warehouse
from tasks.age import age_on
from tasks.ingest import ingest
from tasks.measure import measure_on

D1, D2 = date(2026, 3, 16), date(2026, 2, 27)
#: measured by both D1 (window (11-16, 02-14]) and D2 (window (10-30, 01-28])
ACTION_DATES = [date(2025, 11, 20), date(2025, 12, 15), date(2026, 1, 10), date(2026, 1, 28)]
STAGES = [("due", 2), ("call_1", 3), ("reminder_2", 4), ("formal_notice", 6)]
CHANNELS = [("email", "simulated"), ("letter", "sent"), ("sms", "failed"), ("phone", "simulated")]
NOW = datetime(2026, 3, 17, 3, 0)


def needed_dates() -> list[date]:
    balance = [d - timedelta(n) for d in (D1, D2) for n in (0, 30, 90)]
    recovery = [a + timedelta(n) for a in ACTION_DATES for n in (0, 30)]
    return sorted(set(balance + recovery))


def add_actions(con) -> None:
    """On each action date, an action for every 4th unit with something open: it claims the unit's
    open invoices (as the aging of that date left them) for their open amount; deliveries on a
    channel or two, one of them not reaching the debtor."""
    for n, day in enumerate(ACTION_DATES):
        units = con.execute(
            """select customer_id, currency, list(invoice_id order by invoice_id), sum(open_amount)
               from invoice_snapshot where as_of = ? group by all order by all""",
            [day],
        ).fetchall()
        for k, (customer, currency, invoice_ids, open_amount) in enumerate(units[n::4]):
            stage, rank = STAGES[(n + k) % len(STAGES)]
            action_id = f"{customer}|{currency}|{day}|{stage}"
            # every other action real (the recovery rates count those), the others replayed (apart)
            live = k % 2 == 1
            con.execute(
                """insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage,
                                                stage_rank, amount_due, invoice_ids, status, mode, created_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    action_id,
                    day,
                    customer,
                    currency,
                    f"{customer}|{currency}|1",
                    stage,
                    rank,
                    open_amount,
                    invoice_ids,
                    "planned" if live else "simulated",
                    "live" if live else "replay",
                    NOW,
                ],
            )
            for channel, status in (CHANNELS[k % 4], CHANNELS[(k + 1) % 4]):
                status = "sent" if live and status == "simulated" else status
                con.execute(
                    """insert into deliveries (delivery_id, action_id, channel, status, created_at, updated_at)
                       values (?, ?, ?, ?, ?, ?)""",
                    [f"{action_id}|{channel}", action_id, channel, status, NOW, NOW],
                )


def rows(con, as_of: date) -> list[tuple]:
    return con.execute("select * from recovery_metrics where as_of = ? order by all", [as_of]).fetchall()


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    """A sample ingested once, every needed date aged from it, the actions placed."""
    tmp = tmp_path_factory.mktemp("snapshots")
    generate(tmp / "src", customers=300, seed=11, as_of=D1)
    db = str(tmp / "r.duckdb")
    ingest(str(tmp / "src"), db, D1)
    pol = load_policy(None)
    with warehouse.open_db(db) as con:
        for day in needed_dates():
            age_on(con, day, pol)
        add_actions(con)
    return db, pol


def test_the_sample_has_what_the_allocation_has_to_get_right(sample_db):
    db, _ = sample_db
    with warehouse.open_db(db, read_only=True) as con:
        kinds = dict(con.execute("select kind, count(*) from stg_invoices group by kind").fetchall())
        on_account = warehouse.scalar(con, "select count(*) from stg_payments where invoice_id is null")
        partial = warehouse.scalar(
            con,
            """select count(*) from (select invoice_id, sum(p.amount) as paid, any_value(i.amount) as amount
               from stg_payments as p join stg_invoices as i using (invoice_id) group by invoice_id)
               where paid < amount""",
        )
        currencies = warehouse.scalar(con, "select count(distinct currency) from stg_invoices")
        credit = warehouse.scalar(con, "select count(*) from aged_balance where bucket = 'unapplied_credit'")
        held = warehouse.scalar(con, "select count(*) from invoice_snapshot where held")
        measured = warehouse.scalar(
            con, "select count(*) from dunning_actions where as_of > ? - 120 and as_of <= ? - 30", [D1, D1]
        )
    assert kinds["credit_note"] > 0 and on_account > 0 and partial > 0 and credit > 0 and held > 0
    assert currencies >= 2 and measured > 20


@pytest.mark.parametrize("as_of", [D1, D2])
def test_snapshot_path_writes_the_same_rows_as_the_allocation(sample_db, as_of):
    db, pol = sample_db
    every = needed_dates()
    some = every[::2] + [as_of]  # a mix: the other dates are allocated again
    with warehouse.open_db(db) as con:
        allocated = measure_on(con, as_of, pol)
        by_allocation = rows(con, as_of)
        from_snapshots = measure_on(con, as_of, pol, snapshot_dates=every)
        by_snapshots = rows(con, as_of)
        mixed = measure_on(con, as_of, pol, snapshot_dates=some)
        by_mix = rows(con, as_of)
    assert by_snapshots == by_allocation
    assert by_mix == by_allocation
    # the three paths did what they say: everything, nothing, part allocated again
    assert allocated["point_in_time_units"] > 0 and from_snapshots["point_in_time_units"] == 0
    assert 0 < mixed["point_in_time_units"] < allocated["point_in_time_units"]
    # and the comparison is not vacuous: balances, credit, recoveries (some > 0), ages, holds
    metrics = {(r[1], r[2], r[3]) for r in by_allocation}
    assert {"open_ar", "unapplied_credit", "cei_30d", "recovery_rate_30d", "recovery_by_age_90d", "overdue_held"} <= {
        m for _, m, _ in metrics
    }
    assert any(r[2] == "recovery_rate_30d" and r[3] == "channel" for r in by_allocation)
    assert {r[4] for r in by_allocation if r[2] == "recovery_rate_30d" and r[3] == "mode"} == {"live", "replay"}
    assert any(r[2] == "recovery_rate_30d" and r[5] > 0 for r in by_allocation)
