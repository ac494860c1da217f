"""measure: the recovery metrics of as_of (contract §5) into `recovery_metrics`.

Every term is computed from the source as of its own date: AR(D−30) is the point-in-time open
amount at D−30 whether or not a run happened then, and an action's recovery compares the open
amounts of the invoices it claims on its date and 30 days later. Those open amounts come from the
nightly allocation rules themselves (sql/macros/allocation.sql: direct settlement → credit pool →
open invoices → unapplied credit), run once over a date-stamped copy of the source that holds every
(date, unit) a metric needs (int_metrics_direct_settlement, … on int_metrics_invoices_as_of) — the
same rules, never a second allocation (docs/metrics.md).

A caller that has itself aged some of those dates from the very staging measure reads (a backfill:
the source ingested once, then each day aged before it is measured) names them in
`snapshot_dates`: their open amounts and unapplied credit are read from that aging's
invoice_snapshot and aged_balance — the same allocation's output — instead of being allocated
again. Without it (a nightly run, `relance measure`), every date is allocated again: measure cannot
tell whether the stored snapshots come from the staging it sees.

The work happens on a cursor of its own: its temp tables (the date-stamped allocation) never
replace the caller's, so a backfill can age, escalate and measure on one connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date

from relance.core.errors import UserError
from relance.core.policy import Policy, load_policy
from tasks import warehouse
from tasks.age import write_policy_buckets
from tasks.step import get_logger, step

#: The open amounts at every date needed (allocated again by the nightly rules on the date-stamped
#: source, or read from the snapshots), checked against invoice_snapshot before the mart is written;
#: the runner builds what they read from the SQL (tasks/warehouse.py).
TERMS = "intermediate/int_metrics_open_at"
METRICS = "marts/recovery_metrics"
#: The additive terms recovery_metrics sums and divides (a fleet's shards export them, tasks/fleet).
METRIC_PARTS = "marts/recovery_metric_parts"
CASH_ATTRIBUTION = "intermediate/int_metrics_cash_attribution"

#: The payment-behaviour profile of each unit (docs/metrics.md "Debtor profile"), the credit watch
#: and the expected collections, from the point-in-time source of as_of (int_invoices_as_of,
#: int_payments_as_of) and the open amounts of int_metrics_open_at.
PROFILE = ["marts/debtor_profile", "marts/credit_watch", "marts/expected_payments", "marts/cash_forecast"]

#: The headline metrics a run summary and the logs show.
HEADLINE = ("open_ar", "overdue_ar", "collected_30d", "dso_90d", "cei_30d", "recovery_rate_30d")


def _check_snapshot(cur, as_of: date) -> None:
    """The hold shares read invoice_snapshot of as_of: it must be the one of the same source.
    (When as_of is one of the caller's snapshot dates, its open amounts are that snapshot's.)"""
    pit, snap = cur.execute(
        """
        select (select count(*) from int_metrics_open_at where at_date = $d),
               (select count(*) from invoice_snapshot where as_of = $d)
        """,
        {"d": as_of},
    ).fetchone()
    if pit != snap:
        raise UserError(
            f"measure {as_of}: invoice_snapshot holds {snap} open invoices on {as_of} but the source "
            f"gives {pit}; run the aging of {as_of} (relance run --as-of {as_of}) before measuring it"
        )


def write_snapshot_dates(cur, dates: Iterable[date] | None) -> None:
    """The dates whose invoice_snapshot and aged_balance come from the current staging."""
    cur.execute("create or replace temp table metrics_snapshot_dates (at_date date primary key)")
    cur.execute(
        "insert into metrics_snapshot_dates select distinct unnest(cast($d as date[]))", {"d": sorted(set(dates or ()))}
    )


def profile_params(pol: Policy) -> dict:
    """The policy's debtor_profile and credit_watch keys, as the profile models' parameters."""
    return {
        **pol.debtor_profile.params(),
        "watch_classes": list(pol.credit_watch.classes),
        "watch_max_days_past_due": pol.credit_watch.max_days_past_due,
        "watch_broken_plans": pol.credit_watch.broken_plans,
    }


def profile_built(con, as_of: date, run_id: str | None) -> bool:
    """Whether debtor_profile holds as_of as built by the audited run `run_id` (its rows' built_by_run;
    outside an audited run: any rows of as_of)."""
    return warehouse.scalar(
        con,
        "select count(*) > 0 from debtor_profile where as_of = $d and ($r::varchar is null or built_by_run = $r)",
        {"d": as_of, "r": run_id},
    )


def measure_on(
    con, as_of: date, pol: Policy, snapshot_dates: Iterable[date] | None = None, run_id: str | None = None
) -> dict:
    """Write recovery_metrics for as_of (replacing that date's rows) on an open connection.

    snapshot_dates: dates whose invoice_snapshot and aged_balance the caller wrote, with `pol`, from
    the staging as it is now (same ingest), and committed (measure reads them on a cursor of its
    own); the open amounts at those dates are read there instead of being allocated again.
    None (the default): every date is allocated again. run_id: the audited run measuring; the debtor
    profile of as_of its ladder step built already (tasks/escalate.py, when a ladder rule reads the
    risk class) is read, not built again."""
    started = time.perf_counter()
    cur = con.cursor()  # its own temp schema: the caller's int_* temp tables stay as they are
    try:
        params = {"as_of": as_of}
        write_policy_buckets(cur, pol)
        write_snapshot_dates(cur, snapshot_dates)
        built = warehouse.build(cur, TERMS, params)
        _check_snapshot(cur, as_of)
        # the metrics build int_outcome_status of as_of, which the profile reads too: not built twice
        built = {**built, **warehouse.build(cur, [METRIC_PARTS, METRICS], params, built)}
        # one row per payment: each payment's cash is attributed once (its YAML's key)
        warehouse.require_keys(cur, [CASH_ATTRIBUTION], params)
        from_ladder = run_id is not None and profile_built(cur, as_of, run_id)
        targets = [m for m in PROFILE if m != "marts/debtor_profile"] if from_ladder else PROFILE
        profile_seconds = sum(
            warehouse.build(cur, targets, {**params, **profile_params(pol), "built_by_run": run_id}, built).values()
        )
        classes = dict(
            cur.execute(
                "select risk_class, count(*) from debtor_profile where as_of = $d group by all order by 1", {"d": as_of}
            ).fetchall()
        )
        watched = warehouse.scalar(cur, "select count(*) from credit_watch where as_of = $d", {"d": as_of})
        pairs, dates = cur.execute("select count(*), count(distinct at_date) from int_metrics_pit_units").fetchone()
        vouched = warehouse.scalar(cur, "select count(*) from metrics_snapshot_dates")
        actions = warehouse.scalar(cur, "select count(*) from int_metrics_actions")
        rows = cur.execute(
            """
            select currency, metric, value from recovery_metrics
            where as_of = $d and dimension = 'all' and list_contains($m, metric)
            order by currency, metric
            """,
            {"d": as_of, "m": list(HEADLINE)},
        ).fetchall()
        count = warehouse.scalar(cur, "select count(*) from recovery_metrics where as_of = $d", {"d": as_of})
    finally:
        cur.close()
    by_currency: dict[str, dict[str, str]] = {}
    for currency, metric, value in rows:
        by_currency.setdefault(currency, {})[metric] = str(value)
    return {
        "as_of": as_of.isoformat(),
        "metrics_rows": count,
        "point_in_time_dates": dates,  # dates allocated again (not read from a snapshot)
        "point_in_time_units": pairs,  # (date, unit) pairs allocated again
        "snapshot_dates": vouched,  # dates the caller vouched for (their snapshots may be read)
        "actions_measured": actions,
        "by_currency": by_currency,
        "risk_classes": classes,  # units per class (A–D, new)
        "credit_watch": watched,
        "profile_seconds": round(profile_seconds, 3),
        # units whose profile measure built: 0 when the ladder step of this run built it (read here)
        "profiles_built": 0 if from_ladder else sum(classes.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }


@step(name="measure")
def measure(db: str, as_of: date, policy: str | None = None, run_id: str | None = None) -> dict:
    """Write recovery_metrics for as_of (a re-run replaces that date's rows, other dates stay).
    run_id: the audited run (the debtor profile its ladder step built is read, not built again)."""
    log = get_logger()
    pol = load_policy(policy)
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        summary = measure_on(con, as_of, pol, run_id=run_id)
        checked = warehouse.require_keys(con, [METRIC_PARTS, METRICS, *PROFILE], {"as_of": as_of})
    log.info(
        "measure: keys and not_null of recovery_metrics and the profiles checked for %s in %.1f ms",
        as_of,
        checked * 1000,
    )
    log.info(
        "measure: %d metric rows for %s in %.1f s %s",
        summary["metrics_rows"],
        as_of,
        summary["seconds"],
        summary["by_currency"],
    )
    return summary
