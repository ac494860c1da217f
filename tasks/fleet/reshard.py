"""reshard: change a fleet's number of shards N → M, offline (no fleet run at the same time).

Every customer's state moves to its shard among M (tasks/fleet/shards.py): each table of the shards'
databases is classified by what names its customer —

* a `customer_id` column (actions, episodes, charges, outcomes, profiles, contact flags, the dated
  marts, staging): the row goes to relance_shard(customer_id, M); a row with no customer, to shard 0;
* an `action_id` (deliveries, charge periods), a `delivery_id` (delivery events, postal tracking,
  unmatched provider events), an `outcome_id` (instalments) or an `invoice_id` (the late-charge
  periods): the customer of that action, delivery, outcome or invoice (unmatched events naming no
  known delivery: shard 0). A delivery's `action_id` names a dunning action, an outcome (its recaps
  and reminders, tasks/recaps.py) or a statement of late-payment charges (late_charge_statements);
  an invoice's customer is the one its late charge names (late_charges);
* unmatched provider events (every shard applies the whole journal: an event of another shard's
  delivery waits in each shard's unmatched_events): once each, none a shard matched;
* the database's own history, the same on every shard (runs, source_freshness, seeds): copied from
  shard 0 to every new shard; rejected_rows (no customer): all to the new shard 0;
* the per-shard aggregates (recovery_metrics, recovery_metric_parts, cash_forecast): not moved — a
  shard's sums are no customer's; the fleet's merged history (fleet.duckdb) keeps them, and the next
  run computes its date's again.

The new databases are built beside the old ones, verified by counts (per table: the rows of every
old shard = the rows of every new shard; copied tables: shard 0's on each), then swapped in: the
old databases and the old exports go to ROOT/reshard-backup-<time>/ (the exports name the old
shards: a re-run of an old date runs every new shard again). fleet.json is rewritten last.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tasks import warehouse
from tasks.fleet.shards import FleetError, read_fleet_config, register_macro, shard_db, write_fleet_config
from tasks.step import get_logger

#: Aggregates over a shard's customers: not moved (the fleet's merged database keeps their history).
AGGREGATES = ("recovery_metrics", "recovery_metric_parts", "cash_forecast")
#: The database's own history, the same on every shard: copied from shard 0.
COPIED = ("runs", "source_freshness", "seed_countries", "seed_currencies")
#: Rows naming no customer: all to the new shard 0.
TO_ZERO = ("rejected_rows",)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _tables(con, catalog: str) -> dict[str, list[str]]:
    rows = con.execute(
        """
        select table_name, list(column_name order by ordinal_position)
        from information_schema.columns
        where table_catalog = $c and table_schema = 'main'
          and table_name in (select table_name from information_schema.tables
                             where table_catalog = $c and table_schema = 'main' and table_type = 'BASE TABLE')
        group by table_name
        """,
        {"c": catalog},
    ).fetchall()
    return dict(rows)


def _classify(table: str, columns: list[str]) -> str:
    if table in AGGREGATES:
        return "aggregate"
    if table in COPIED:
        return "copied"
    if table in TO_ZERO:
        return "zero"
    for key in ("customer_id", "action_id", "delivery_id", "outcome_id", "invoice_id"):
        if key in columns:
            return key
    return "zero"


def reshard(root: str | Path, to: int) -> dict:
    """Move every customer's state of the fleet at root to its shard among `to`; returns
    {"from", "to", "customers", "tables": {table: rows}, "backup", "seconds"}."""
    log = get_logger()
    started = time.perf_counter()
    root = Path(root).resolve()
    n = read_fleet_config(root)["shards"]
    if isinstance(to, bool) or not isinstance(to, int) or to < 1:
        raise FleetError(f"--to must be a whole number of shards, at least 1, not {to!r}")
    if to == n:
        raise FleetError(f"the fleet at {root} already has {n} shards: nothing to move")
    olds = [shard_db(root, k) for k in range(n)]
    missing = [str(p) for p in olds if not p.is_file()]
    if missing:
        raise FleetError(f"reshard: the fleet at {root} misses shard databases {', '.join(missing)}: run it first")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work = root / f".reshard-{stamp}"
    work.mkdir(parents=True)
    news = [work / f"shard-{j}.duckdb" for j in range(to)]
    tables: dict[str, int] = {}
    try:
        # every old database opened once, exclusively: a fleet run holding one makes this fail clearly
        con = duckdb.connect()
        register_macro(con)
        for k, p in enumerate(olds):
            try:
                con.execute(f"attach '{_sql_path(p)}' as old{k} (read_only)")
            except duckdb.Error as e:
                raise FleetError(f"reshard: shard {k} ({p}) cannot be opened ({str(e).splitlines()[0]})") from None
        layout: dict[str, list[str]] = {}
        for k in range(n):
            for table, cols in _tables(con, f"old{k}").items():
                layout.setdefault(table, cols)
        old_unions = {
            t: " union all by name ".join(
                f"select * from old{k}.{_q(t)}" for k in range(n) if t in _tables(con, f"old{k}")
            )
            for t in layout
        }

        # who each action, delivery, outcome and invoice belongs to, over every old shard
        def owners(sources: dict[str, str]) -> str:
            """id → customer_id over the tables of `sources` ({table: its id column}) that exist."""
            parts = [
                f"select {col} as id, customer_id from ({old_unions[t]})" for t, col in sources.items() if t in layout
            ]
            if not parts:
                return "select null::varchar as id, null::varchar as customer_id where false"
            return f"select id, any_value(customer_id) as customer_id from ({' union all '.join(parts)}) group by id"

        # a delivery's action_id: a ladder action, an outcome (recaps, reminders) or a late-charge statement
        con.execute(
            "create temp table _owner_action as "
            + owners(
                {"dunning_actions": "action_id", "outcomes": "outcome_id", "late_charge_statements": "statement_id"}
            )
        )
        con.execute(
            "create temp table _owner_invoice as "
            + owners({"late_charges": "invoice_id"})  # the tables keyed by invoice_id alone: its periods
        )
        con.execute(
            "create temp table _owner_delivery as select d.delivery_id as id, any_value(a.customer_id) as customer_id "
            f"from ({old_unions['deliveries']}) as d join _owner_action as a on a.id = d.action_id group by d.delivery_id"
            if "deliveries" in layout
            else "create temp table _owner_delivery (id varchar, customer_id varchar)"
        )
        con.execute(
            "create temp table _owner_outcome as select outcome_id as id, any_value(customer_id) as customer_id "
            f"from ({old_unions['outcomes']}) group by outcome_id"
            if "outcomes" in layout
            else "create temp table _owner_outcome (id varchar, customer_id varchar)"
        )
        customers = con.execute(
            "select count(distinct customer_id) from ("
            + " union all ".join(
                f"select customer_id from ({old_unions[t]})" for t in layout if "customer_id" in layout[t]
            )
            + ")"
        ).fetchone()[0]
        for j, path in enumerate(news):
            with warehouse.open_db(path) as new:
                warehouse.ensure_schema(new)  # the contract's tables with their keys
            con.execute(f"attach '{_sql_path(path)}' as new{j}")
        if "unmatched_events" in layout:
            # every shard applies the whole events journal: an event of another shard's delivery
            # waits in each shard's unmatched_events. Kept once, and not when a shard matched it.
            matched = (
                f"where event_key not in (select event_key from ({old_unions['delivery_events']}) where event_key is not null)"
                if "delivery_events" in layout and "event_key" in layout["delivery_events"]
                else ""
            )
            old_unions["unmatched_events"] = (
                f"select * from ({old_unions['unmatched_events']}) {matched} "
                "qualify row_number() over (partition by event_key order by received_at) = 1"
            )
        for table, cols in sorted(layout.items()):
            how = _classify(table, cols)
            if how == "aggregate":
                continue
            union = old_unions[table]
            if how == "copied":
                source = f"select * from old0.{_q(table)}" if table in _tables(con, "old0") else None
                if source is None:
                    continue
            for j in range(to):
                exists = table in _tables(con, f"new{j}")
                if not exists:
                    con.execute(f"create table new{j}.{_q(table)} as select * from ({union}) limit 0")
                if how == "copied":
                    select = source
                elif how == "zero":
                    select = f"select * from ({union})" if j == 0 else None
                elif how == "customer_id":
                    select = f"select * from ({union}) where coalesce(relance_shard(customer_id, {to}), 0) = {j}"
                else:
                    owner = {
                        "action_id": "_owner_action",
                        "delivery_id": "_owner_delivery",
                        "invoice_id": "_owner_invoice",
                    }.get(how, "_owner_outcome")
                    select = (
                        f"select t.* from ({union}) as t left join {owner} as o on o.id = t.{how} "
                        f"where coalesce(relance_shard(o.customer_id, {to}), 0) = {j}"
                    )
                if select:
                    con.execute(f"insert into new{j}.{_q(table)} by name {select}")
            before = con.execute(f"select count(*) from ({union if how != 'copied' else source})").fetchone()[0]
            after = [
                con.execute(f"select count(*) from new{j}.{_q(table)}").fetchone()[0]
                for j in range(to)
                if table in _tables(con, f"new{j}")
            ]
            if (how == "copied" and any(a != before for a in after)) or (how != "copied" and sum(after) != before):
                raise FleetError(
                    f"reshard: table {table} has {before} rows on the old shards but {after} on the new ones; "
                    "nothing was changed"
                )
            tables[table] = before
        con.close()
        # swap: the old databases and exports to a backup folder, the new databases in their place
        backup = root / f"reshard-backup-{stamp}"
        backup.mkdir()
        for k, p in enumerate(olds):
            for suffix in ("", ".wal"):
                q = Path(str(p) + suffix)
                if q.exists():
                    os.replace(q, backup / f"shard-{k}.duckdb{suffix}")
        if (root / "exports").exists():
            os.replace(root / "exports", backup / "exports")
        for k in range(to, n):  # shards beyond the new count: their folders (source, outbox, logs) too
            os.replace(shard_db(root, k).parent, backup / f"shard-{k}")
        for j, path in enumerate(news):
            shard_db(root, j).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, shard_db(root, j))
        write_fleet_config(root, to)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = round(time.perf_counter() - started, 2)
    log.info("reshard %s: %d → %d shards, %d customers, in %.1f s", root, n, to, customers, seconds)
    return {
        "from": n,
        "to": to,
        "customers": customers,
        "tables": tables,
        "backup": str(backup),
        "seconds": seconds,
    }
