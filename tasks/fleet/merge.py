"""merge_date: the shards' exports of one date → ROOT/fleet.duckdb, one database for the report.

* The dated marts (aged_balance, invoice_snapshot, unit_stage, rejected_rows, debtor_profile,
  credit_watch, expected_payments) are the union of the shards' rows of D: customers are disjoint, so
  each row is the single database's row of that customer (aged_balance by bucket and currency is
  their sum). They replace fleet.duckdb's rows of D; other dates stay (the report's history).
* recovery_metrics is not a union: the shards' additive terms (recovery_metric_parts: sums and
  counts per key, the histogram of a median) are stored for D, and the mart is built from them by
  the very model of a single database (sql/marts/recovery_metrics.sql sums by key, then divides and
  rounds) — the same figures to the last decimal. cash_forecast is built from expected_payments
  by its model too.
* dunning_actions, deliveries, the statements of late-payment charges (late_charge_statements,
  late_charges, late_charge_periods: the report's statements line of the month, the write-back's
  statements of D) and the staging the report reads (stg_customers, stg_payments) are the union of
  the shards' state exported with D (a backfill's intermediate dates have none: kept). A shard
  exported before a table existed (an older fleet) leaves that table as it was until every shard
  exports it.

Every shard must be complete for D (its _done marker), else FleetError naming the missing ones.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

from tasks import warehouse
from tasks.fleet.export import DATED, STATE, export_path, shard_complete
from tasks.fleet.shards import FleetError, fleet_db
from tasks.step import get_logger

#: Built on fleet.duckdb from the merged rows, by the models of a single database.
REBUILT = ("marts/recovery_metrics", "marts/cash_forecast")


def _files(root: Path, table: str, as_of: date, shards: int) -> list[str]:
    return [str(p) for k in range(shards) if (p := export_path(root, table, as_of, k)).is_file()]


def _exists(con, table: str) -> bool:
    return bool(
        warehouse.scalar(
            con,
            "select count(*) from information_schema.tables where table_schema = 'main' and table_name = $t",
            {"t": table},
        )
    )


def _scan(paths: list[str]) -> str:
    return "read_parquet(" + repr(paths).replace('"', "'") + ", union_by_name = true, hive_partitioning = false)"


def _new_debtors_expected(con, as_of: date) -> None:
    """expected_payments of `new` debtors (basis 'currency') use the currency's delay over every
    debtor — on a shard, over its own: computed again here over the merged debtor_profile, by the
    formula of sql/marts/expected_payments.sql (its `portfolio` and `delays`)."""
    con.execute(
        """
        with portfolio as (
            select
                currency,
                cast((2 * sum(cast(avg_days_late * 100 as hugeint) * cast(paid_amount * 100 as hugeint))
                    + 100 * sum(cast(paid_amount * 100 as hugeint)))
                    // (200 * sum(cast(paid_amount * 100 as hugeint))) as integer) as delay_days
            from debtor_profile
            where as_of = $d and paid_invoices > 0
            group by currency
        )
        update expected_payments
        set expected_days_late = portfolio.delay_days,
            expected_date = greatest(expected_payments.due_date + portfolio.delay_days, cast($d as date) + 1)
        from portfolio
        where expected_payments.as_of = $d
          and expected_payments.basis = 'currency'
          and expected_payments.currency = portfolio.currency
        """,
        {"d": as_of},
    )


#: The order of gravity of the shards' freshness verdicts: the fleet's is the gravest.
_VERDICTS = ("stale", "stale_allowed", "fresh", "first_run")


def _fleet_verdict(con, as_of: date) -> None:
    """One freshness verdict for the fleet (the report's banner): the gravest of the shards', with
    every shard's reasons, recorded last for as_of."""
    rows = con.execute(
        "select run_id, verdict, stale, allow_stale, reasons, checked_at, source_kind from source_freshness "
        "where as_of = $d and run_id not like 'fleet-%' order by run_id",
        {"d": as_of},
    ).fetchall()
    if not rows:
        return
    import json

    verdict = min((r[1] for r in rows), key=lambda v: _VERDICTS.index(v) if v in _VERDICTS else -1)
    reasons = [reason for r in rows for reason in json.loads(r[4] or "[]")]
    con.execute("delete from source_freshness where run_id = $id", {"id": f"fleet-{as_of.isoformat()}"})
    con.execute(
        """
        insert into source_freshness (run_id, as_of, checked_at, source_kind, verdict, stale, allow_stale, reasons)
        values ($id, $d, $at, $kind, $verdict, $stale, $allow, $reasons)
        """,
        {
            "id": f"fleet-{as_of.isoformat()}",
            "d": as_of,
            "at": max(r[5] for r in rows) + timedelta(microseconds=1),
            "kind": rows[0][6],
            "verdict": verdict,
            "stale": any(r[2] for r in rows),
            "allow": any(r[3] for r in rows),
            "reasons": json.dumps(sorted(set(reasons))),
        },
    )


def merge_date(root: str | Path, as_of: date, shards: int) -> Path:
    """Merge the exports of as_of from shards 0 … shards − 1 into ROOT/fleet.duckdb; returns its path."""
    log = get_logger()
    started = time.perf_counter()
    root = Path(root)
    missing = [k for k in range(shards) if not shard_complete(root, k, as_of)]
    if missing:
        raise FleetError(
            f"fleet merge of {as_of}: shard{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} not complete for {as_of} (no export): run them first"
        )
    db = fleet_db(root)
    counts: dict[str, int] = {}
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        with warehouse.transaction(con):
            for table in DATED:
                paths = _files(root, table, as_of, shards)
                if not paths:
                    continue
                scan = _scan(paths)
                if not _exists(con, table):
                    con.execute(f"create table {table} as select * from {scan} limit 0")
                con.execute(f"delete from {table} where as_of = $d", {"d": as_of})
                con.execute(f"insert into {table} by name select * from {scan}")
                counts[table] = warehouse.scalar(con, f"select count(*) from {table} where as_of = $d", {"d": as_of})
            for table in STATE:
                paths = _files(root, table, as_of, shards)
                if len(paths) < shards:
                    continue  # no state exported with this date (a backfill's intermediate day)
                scan = _scan(paths)
                if table.startswith("stg_") or not _exists(con, table):
                    con.execute(f"create or replace table {table} as select * from {scan}")
                else:
                    con.execute(f"delete from {table}")
                    con.execute(f"insert into {table} by name select * from {scan}")
                counts[table] = warehouse.scalar(con, f"select count(*) from {table}")
            _new_debtors_expected(con, as_of)
            _fleet_verdict(con, as_of)
        warehouse.build(con, list(REBUILT), {"as_of": as_of})
        counts["recovery_metrics"] = warehouse.scalar(
            con, "select count(*) from recovery_metrics where as_of = $d", {"d": as_of}
        )
    log.info("merge: %d shards of %s into %s in %.1f s: %s", shards, as_of, db, time.perf_counter() - started, counts)
    return db
