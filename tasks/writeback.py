"""write_back: recovery_metrics and aged_balance upserted into a PostgreSQL database for BI tools,
with the debtors' payment profiles (debtor_profile), the credit watch (credit_watch: the units
the ERP can hold new orders for, docs/metrics.md "Credit watch"), the expected collections
(cash_forecast) and the statements of late-payment charges made on the date
(late_charge_statements, tasks/late_charges.py).

`relance run … --metrics-target postgresql://user@host/db` copies the run date's rows into the
schema `relance` of that database (created if missing), tables `recovery_metrics` and
`aged_balance` with the contract's keys as primary keys. Each date is written in one transaction:
COPY into a temp table, `INSERT … ON CONFLICT DO UPDATE` into the table, and the date's keys that
the run no longer produces are deleted — so a BI tool sees exactly one row per key, the rows of
the latest run of that date, however many times the date is re-run.

A write-back that fails (server down, network) leaves DuckDB as it was and raises a clear error.
The DuckDB ledger `writeback_log` records each (date, target) written; the next write-back to
the same target also writes every date it has not received yet, so nothing is lost. The target
is recorded and logged without its password.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime

from relance.core.errors import UserError
from relance.core.urls import escape_userinfo, redact_url, scrub
from tasks import warehouse
from tasks.step import get_logger, step

DEFAULT_SCHEMA = "relance"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

LEDGER_DDL = """
create table if not exists writeback_log (
    as_of          date not null,
    target_label   varchar not null,   -- postgresql://user@host:port/db#schema — never the password
    written_at     timestamp not null, -- UTC
    metrics_rows   integer not null,
    aged_rows      integer not null,
    primary key (as_of, target_label)
)
"""

# (table, key columns, value columns, PostgreSQL DDL body, the DuckDB SELECT of one date)
TABLES = {
    "recovery_metrics": (
        ("as_of", "currency", "metric", "dimension", "dimension_value"),
        ("value",),
        """
            as_of           date not null,
            currency        text not null,
            metric          text not null,
            dimension       text not null,
            dimension_value text not null,
            value           numeric(38,4) not null,
            written_at      timestamptz not null default now(),
            primary key (as_of, currency, metric, dimension, dimension_value)
        """,
        """select as_of, currency, metric, dimension, dimension_value, value
           from recovery_metrics where as_of = $as_of""",
    ),
    "aged_balance": (
        ("as_of", "customer_id", "currency", "bucket"),
        ("amount", "invoice_count"),
        """
            as_of          date not null,
            customer_id    text not null,
            currency       text not null,
            bucket         text not null,
            amount         numeric(18,2) not null,
            invoice_count  integer not null,
            written_at     timestamptz not null default now(),
            primary key (as_of, customer_id, currency, bucket)
        """,
        """select as_of, customer_id, currency, bucket, amount, invoice_count
           from aged_balance where as_of = $as_of""",
    ),
    "debtor_profile": (
        ("as_of", "customer_id", "currency"),
        (
            "paid_invoices",
            "paid_late",
            "paid_late_30",
            "paid_amount",
            "avg_days_late",
            "share_paid_late",
            "share_paid_late_30",
            "avg_days_late_3m",
            "avg_days_late_prev_9m",
            "trend_days",
            "open_amount",
            "overdue_amount",
            "overdue_share",
            "max_days_past_due",
            "broken_promises",
            "disputes",
            "score",
            "risk_class",
        ),
        """
            as_of                 date not null,
            customer_id           text not null,
            currency              text not null,
            paid_invoices         integer not null,
            paid_late             integer not null,
            paid_late_30          integer not null,
            paid_amount           numeric(38,2) not null,
            avg_days_late         numeric(18,2),
            share_paid_late       numeric(9,2),
            share_paid_late_30    numeric(9,2),
            avg_days_late_3m      numeric(18,2),
            avg_days_late_prev_9m numeric(18,2),
            trend_days            numeric(18,2),
            open_amount           numeric(38,2) not null,
            overdue_amount        numeric(38,2) not null,
            overdue_share         numeric(9,2) not null,
            max_days_past_due     integer,
            broken_promises       integer,
            disputes              integer,
            score                 integer,
            risk_class            text not null,
            written_at            timestamptz not null default now(),
            primary key (as_of, customer_id, currency)
        """,
        """select as_of, customer_id, currency, paid_invoices, paid_late, paid_late_30, paid_amount, avg_days_late,
                  share_paid_late, share_paid_late_30, avg_days_late_3m, avg_days_late_prev_9m, trend_days,
                  open_amount, overdue_amount, overdue_share, max_days_past_due, broken_promises, disputes,
                  score, risk_class
           from debtor_profile where as_of = $as_of""",
    ),
    "credit_watch": (
        ("as_of", "customer_id", "currency"),
        ("risk_class", "score", "overdue_amount", "max_days_past_due", "reasons"),
        """
            as_of              date not null,
            customer_id        text not null,
            currency           text not null,
            risk_class         text not null,
            score              integer,
            overdue_amount     numeric(38,2) not null,
            max_days_past_due  integer,
            reasons            text not null,
            written_at         timestamptz not null default now(),
            primary key (as_of, customer_id, currency)
        """,
        """select as_of, customer_id, currency, risk_class, score, overdue_amount, max_days_past_due, reasons
           from credit_watch where as_of = $as_of""",
    ),
    "cash_forecast": (
        ("as_of", "currency", "horizon_days"),
        ("expected_amount", "invoice_count"),
        """
            as_of            date not null,
            currency         text not null,
            horizon_days     integer not null,
            expected_amount  numeric(38,2) not null,
            invoice_count    integer not null,
            written_at       timestamptz not null default now(),
            primary key (as_of, currency, horizon_days)
        """,
        """select as_of, currency, horizon_days, expected_amount, invoice_count
           from cash_forecast where as_of = $as_of""",
    ),
    # the statements of late-payment charges made on the date (live ones; tasks/late_charges.py)
    "late_charge_statements": (
        ("as_of", "statement_id"),
        (
            "customer_id",
            "currency",
            "period",
            "invoice_count",
            "interest_amount",
            "indemnity_amount",
            "indemnity_currency",
            "charges_total",
        ),
        """
            as_of              date not null,
            statement_id       text not null,
            customer_id        text not null,
            currency           text not null,
            period             text not null,
            invoice_count      integer not null,
            interest_amount    numeric(38,2) not null,
            indemnity_amount   numeric(38,2) not null,
            indemnity_currency text not null,
            charges_total      numeric(38,2) not null,
            written_at         timestamptz not null default now(),
            primary key (as_of, statement_id)
        """,
        """select as_of, statement_id, customer_id, currency, period, cast(len(invoice_ids) as integer),
                  interest_amount, indemnity_amount, indemnity_currency, charges_total
           from late_charge_statements where as_of = $as_of and mode = 'live'""",
    ),
}

#: Columns added to a table after its first release: added to a target created before them
#: (`alter table … add column if not exists`), null for the dates measured before them.
ADDED_COLUMNS = {"debtor_profile": ("broken_promises integer", "disputes integer")}

#: Tables a warehouse measured before they existed may lack: written as empty for those dates.
OPTIONAL_TABLES = ("debtor_profile", "credit_watch", "cash_forecast", "late_charge_statements")


class WriteBackError(UserError):
    """The metrics target could not be written; DuckDB is intact and the date will be retried."""


def target_label(target: str, schema: str = DEFAULT_SCHEMA) -> str:
    """`postgresql://user@host:port/db#schema`: what the ledger and the logs show (no password, no query)."""
    return f"{redact_url(target)}#{schema}"


def _check(target: str, schema: str) -> None:
    if not target.lower().startswith(("postgresql://", "postgres://")):
        raise UserError("--metrics-target must be a postgresql:// URL (e.g. postgresql://bi@db.example/finance)")
    if not _IDENT.match(schema):
        raise UserError(f"metrics schema {schema!r}: lowercase letters, digits and _ only")


def check_target(target: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Refuse, before a run starts, a metrics target that is not a PostgreSQL URL libpq can read
    (one line naming the target without its password)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    _check(target, schema)
    try:
        conninfo_to_dict(escape_userinfo(target))
    except ProgrammingError as e:
        detail = scrub(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, target)
        raise UserError(f"--metrics-target {redact_url(target)} is not a valid PostgreSQL URL: {detail}") from None


def pending_dates(con, label: str, as_of: date, since: date | None = None) -> list[date]:
    """as_of, every date in [since, as_of] that has rows, and every date with rows that this
    target has not received yet — in date order."""
    rows = con.execute(
        """
        with dates as (
            select distinct as_of from recovery_metrics
            union select distinct as_of from aged_balance
        )
        select as_of from dates
        where as_of not in (select as_of from writeback_log where target_label = $label)
           or ($since is not null and as_of between $since and $as_of)
        union select cast($as_of as date)
        order by as_of
        """,
        {"label": label, "as_of": as_of, "since": since},
    ).fetchall()
    return [r[0] for r in rows]


def _ensure_target(pg, schema: str) -> None:
    from psycopg import sql

    with pg.transaction():
        # one writer at a time creates the schema and tables (two first runs may race)
        pg.execute("select pg_advisory_xact_lock(hashtext('relance-writeback-ddl'))")
        pg.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        for table, (_keys, _values, ddl, _select) in TABLES.items():
            pg.execute(
                sql.SQL("create table if not exists {}.{} ({})").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.SQL(ddl)
                )
            )
        for table, columns in ADDED_COLUMNS.items():
            for column in columns:
                pg.execute(
                    sql.SQL("alter table {}.{} add column if not exists {}").format(
                        sql.Identifier(schema), sql.Identifier(table), sql.SQL(column)
                    )
                )


def _has_table(con, table: str) -> bool:
    if table not in OPTIONAL_TABLES:
        return True
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'main' and table_name = ?", [table]
        ).fetchone()[0]
    )


def _write_date(pg, con, schema: str, day: date) -> dict[str, int]:
    """One date, one transaction: COPY → upsert → delete the keys this run no longer has."""
    from psycopg import sql

    counts = {}
    with pg.transaction():
        for table, (keys, values, _ddl, select) in TABLES.items():
            cols = keys + values
            target = sql.Identifier(schema, table)
            staging = sql.Identifier(f"_relance_{table}")
            pg.execute(
                sql.SQL("create temp table {} (like {} including defaults) on commit drop").format(staging, target)
            )
            rows = con.execute(select, {"as_of": day}).fetchall() if _has_table(con, table) else []
            with pg.cursor().copy(
                sql.SQL("copy {} ({}) from stdin").format(staging, sql.SQL(", ").join(map(sql.Identifier, cols)))
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
            key_list = sql.SQL(", ").join(map(sql.Identifier, keys))
            changed = sql.SQL(" or ").join(
                sql.SQL("{t}.{c} is distinct from excluded.{c}").format(t=sql.Identifier(table), c=sql.Identifier(c))
                for c in values
            )
            pg.execute(
                sql.SQL(
                    "insert into {target} as {alias} ({cols}) select {cols} from {staging} "
                    "on conflict ({keys}) do update set {sets}, written_at = now() where {changed}"
                ).format(
                    target=target,
                    alias=sql.Identifier(table),
                    cols=col_list,
                    staging=staging,
                    keys=key_list,
                    sets=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in values),
                    changed=changed,
                )
            )
            pg.execute(
                sql.SQL(
                    "delete from {target} as t where t.as_of = %s and not exists "
                    "(select 1 from {staging} as s where {match})"
                ).format(
                    target=target,
                    staging=staging,
                    match=sql.SQL(" and ").join(sql.SQL("s.{c} = t.{c}").format(c=sql.Identifier(k)) for k in keys),
                ),
                [day],
            )
            counts[table] = len(rows)
    return counts


def write_back_on(con, as_of: date, target: str, schema: str = DEFAULT_SCHEMA, since: date | None = None) -> dict:
    """Write as_of (and every date the target has not received, and [since, as_of]) to the target."""
    import psycopg

    _check(target, schema)
    label = target_label(target, schema)
    log = get_logger()
    started = time.perf_counter()
    con.execute(LEDGER_DDL)
    days = pending_dates(con, label, as_of, since)
    written: dict[str, dict[str, int]] = {}
    try:
        with psycopg.connect(escape_userinfo(target), connect_timeout=10, application_name="relance-writeback") as pg:
            _ensure_target(pg, schema)
            for day in days:
                counts = _write_date(pg, con, schema, day)
                con.execute(
                    "insert or replace into writeback_log values ($d, $label, $at, $m, $a)",
                    {
                        "d": day,
                        "label": label,
                        "at": datetime.now(UTC).replace(tzinfo=None),
                        "m": counts["recovery_metrics"],
                        "a": counts["aged_balance"],
                    },
                )
                written[day.isoformat()] = counts
    except psycopg.Error as e:
        missing = [d.isoformat() for d in days if d.isoformat() not in written]
        detail = scrub(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, target)
        raise WriteBackError(
            f"metrics write-back to {label} failed: {detail}. The DuckDB results are kept; "
            f"{len(missing)} date(s) not written ({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}) "
            "will be written by the next write-back to this target."
        ) from None
    summary = {
        "target": label,
        "dates": list(written),
        "metrics_rows": sum(c["recovery_metrics"] for c in written.values()),
        "aged_rows": sum(c["aged_balance"] for c in written.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info(
        "write_back: %d date(s) to %s (%d metric rows, %d aged balance rows) in %.1f s",
        len(written),
        label,
        summary["metrics_rows"],
        summary["aged_rows"],
        summary["seconds"],
    )
    return summary


@step(name="write_back", retries=2, retry_delay_seconds=30)
def write_back(db: str, as_of: date, target: str, schema: str = DEFAULT_SCHEMA, since: date | None = None) -> dict:
    """Upsert recovery_metrics and aged_balance of as_of — and of every date this target missed —
    into `schema` (default `relance`) of the PostgreSQL database `target`."""
    _check(target, schema)
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)  # a warehouse of an earlier release gains the columns added since
        return write_back_on(con, as_of, target, schema, since)
