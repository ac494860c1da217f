"""export_shard: a shard's marts for one date, as Parquet, for the fleet's merge.

    ROOT/exports/<table>/as_of=D/shard=K/part.parquet
    ROOT/exports/_done/as_of=D/shard=K.json     written last: the shard is complete for D

Dated marts (the rows of D): aged_balance, invoice_snapshot, unit_stage, rejected_rows, the additive
terms of recovery_metrics (recovery_metric_parts: sums and counts, never ratios — the merge divides
the sums), debtor_profile, credit_watch and expected_payments (the report's profiles and forecast),
source_freshness (the shard's verdict on its source).
State (the tables as they stand after the run of D): dunning_actions and deliveries (a delivery's
status moves after its date: events, a later dispatch), the statements of late-payment charges
(late_charge_statements, late_charges, late_charge_periods: a statement made on the first business
day of a month is the month's report line until its end, and its status moves with its deliveries'),
and the staging the report names customers and payments from (stg_customers, stg_payments). A
backfill exports the state once, with its last date.

Each file is written beside its place and renamed into it: a reader sees a whole file or none.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

from tasks import warehouse
from tasks.step import get_logger

#: The marts of one date (rows where as_of = D).
DATED = (
    "aged_balance",
    "invoice_snapshot",
    "unit_stage",
    "rejected_rows",
    "recovery_metric_parts",
    "debtor_profile",
    "credit_watch",
    "expected_payments",
    "source_freshness",
)
#: The tables exported whole, as they stand after the run of D.
STATE = (
    "dunning_actions",
    "deliveries",
    "late_charge_statements",
    "late_charges",
    "late_charge_periods",
    "stg_customers",
    "stg_payments",
)

DONE = "_done"


def export_path(root: str | Path, table: str, as_of: date, shard: int) -> Path:
    return Path(root) / "exports" / table / f"as_of={as_of.isoformat()}" / f"shard={shard}" / "part.parquet"


def done_path(root: str | Path, shard: int, as_of: date) -> Path:
    return Path(root) / "exports" / DONE / f"as_of={as_of.isoformat()}" / f"shard={shard}.json"


def shard_complete(root: str | Path, shard: int, as_of: date) -> bool:
    """Did shard K finish its run of as_of and export it (its _done marker)?"""
    return done_path(root, shard, as_of).is_file()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def export_shard(db: str | Path, root: str | Path, shard: int, as_of: date, state: bool = True) -> dict:
    """Export shard K's marts of as_of (and, when `state`, its actions, deliveries and staging) under
    ROOT/exports, then the _done marker. Returns {"rows": {table: n}, "seconds"}. A re-export
    replaces the files of that date and shard."""
    log = get_logger()
    started = time.perf_counter()
    done = done_path(root, shard, as_of)
    done.unlink(missing_ok=True)  # a re-run of the date: incomplete until exported again
    rows: dict[str, int] = {}
    with warehouse.open_db(db, read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        jobs = [(t, f"select * from {t} where as_of = $as_of") for t in DATED]
        if state:
            jobs += [(t, f"select * from {t}") for t in STATE]
        for table, query in jobs:
            if table not in tables:
                continue
            target = export_path(root, table, as_of, shard)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".part-{os.getpid()}.parquet")
            params = {"as_of": as_of} if "$as_of" in query else {}
            con.execute(f"copy ({query}) to '{_sql_path(tmp)}' (format parquet)", params)
            os.replace(tmp, target)
            rows[table] = warehouse.scalar(con, f"select count(*) from ({query})", params)
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = done.with_name(f".{done.name}.{os.getpid()}")
    marker = {
        "shard": shard,
        "as_of": as_of.isoformat(),
        "db": str(db),
        "state": state,
        "rows": rows,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, done)
    seconds = round(time.perf_counter() - started, 2)
    log.info("export: shard %d of %s exported in %.1f s: %s", shard, as_of, seconds, rows)
    return {"shard": shard, "as_of": as_of.isoformat(), "rows": rows, "seconds": seconds}
