"""ingest: land the source (files, PostgreSQL or HTTP API) in DuckDB and validate it row by row."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from relance.core.paths import SQL_DIR
from relance.core.urls import redact_url
from tasks import warehouse
from tasks.sources import ENTITIES, files
from tasks.step import get_logger, step, transient_failure

#: What ingest writes: the staging tables and rejected_rows (the runner builds the *_checked models
#: they read and finds the order from the SQL, tasks/warehouse.py).
STAGING_TARGETS = [
    "staging/stg_customers",
    "staging/stg_invoices",
    "staging/stg_payments",
    "staging/stg_holds",
    "marts/rejected_rows",
]


@dataclass
class IngestResult:
    source: str
    rows_read: dict[str, int]
    rows_loaded: dict[str, int]
    rows_rejected: int
    fields_dropped: int
    rejected_by_entity: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def source_kind(source: str) -> str:
    lowered = source.lower()
    if lowered.startswith(("postgresql://", "postgres://")):
        return "postgres"
    if lowered.startswith(("http://", "https://")):
        return "http"
    return "files"


#: Tables of the layout before staging became temp tables + stg_* tables: derived from the source,
#: rebuilt by every ingest, so dropped (stg_* were views then; they are tables now).
_LEGACY_TABLES = [f"raw_{e}" for e in ENTITIES] + [f"stg_{e}_checked" for e in ENTITIES]
_LEGACY_VIEWS = [f"stg_{e}" for e in ENTITIES]


def drop_legacy_tables(con) -> None:
    found = con.execute(
        """
        select table_name, table_type from information_schema.tables
        where table_schema = 'main' and table_catalog = current_database()
          and (list_contains($tables, table_name) and table_type = 'BASE TABLE'
               or list_contains($views, table_name) and table_type = 'VIEW')
        """,
        {"tables": _LEGACY_TABLES, "views": _LEGACY_VIEWS},
    ).fetchall()
    for name, kind in sorted(found, key=lambda f: f[1] != "VIEW"):  # the views over the tables first
        con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} main.{name}")


#: Sums held as decimal(18,2) by warehouses created before sums were decimal(38,2) (sql/ddl): two
#: invoices of 9e15 overflowed a customer's balance and stopped the night. Widened once, in place.
_SUM_COLUMNS = {
    "aged_balance": ("amount",),
    "unit_stage": ("dunnable_amount",),
    "dunning_actions": ("amount_due", "interest_amount", "indemnity_amount", "charges_total"),
    "action_charges": ("interest_amount",),
}


def widen_sum_columns(con) -> None:
    narrow = con.execute(
        """
        select table_name, column_name from information_schema.columns
        where table_schema = 'main' and table_catalog = current_database()
          and data_type = 'DECIMAL(18,2)'
          and list_contains($sums, table_name || '.' || column_name)
        """,
        {"sums": [f"{t}.{c}" for t, cols in _SUM_COLUMNS.items() for c in cols]},
    ).fetchall()
    for table, column in narrow:
        con.execute(f"alter table main.{table} alter column {column} type decimal(38,2)")


def rekey_charge_periods(con) -> None:
    """action_charge_periods was keyed by (action, invoice, half-year) before a payment could cut
    a half-year in two (the base lowers from each payment's date): rekeyed once, in place, by
    (action, invoice, period_start), its rows kept."""
    old = con.execute(
        """
        select count(*) from duckdb_constraints()
        where schema_name = 'main' and table_name = 'action_charge_periods'
          and constraint_type = 'PRIMARY KEY' and list_contains(constraint_column_names, 'half_year')
        """
    ).fetchone()[0]
    if not old:
        return
    con.execute("alter table main.action_charge_periods rename to action_charge_periods_rekeyed")
    warehouse.ensure_schema(con)
    con.execute("insert into main.action_charge_periods by name select * from main.action_charge_periods_rekeyed")
    con.execute("drop table main.action_charge_periods_rekeyed")


def load_seeds(con) -> None:
    for seed in sorted((SQL_DIR / "seeds").glob("*.csv")):
        con.execute(
            f"create or replace table seed_{seed.stem} as select * from read_csv($p, header = true, all_varchar = true)",
            {"p": str(seed)},
        )


def load_macros(con) -> None:
    """The SQL macros of sql/macros and the Python functions the staging models call (the phone
    and email rules of relance.core.phones and relance.core.emails, shared with dispatch)."""
    from relance.core import emails, phones

    for path in sorted((SQL_DIR / "macros").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))
    phones.register(con)
    emails.register(con)


def _extract(source: str, workdir: Path, source_schema: str) -> tuple[Path, dict[str, str]]:
    """Bring a remote source down to a folder of CSV files; returns (folder, labels by entity)."""
    kind = source_kind(source)
    if kind == "files":
        return Path(source), {}
    if kind == "postgres":
        from tasks.sources import postgres

        return postgres.extract(source, source_schema, workdir)
    from tasks.sources import http_api

    return http_api.extract(source, workdir)


@step(name="ingest", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=transient_failure)
def ingest(source: str, db: str, as_of: date, source_schema: str | None = None, policy: str | None = None) -> dict:
    """Load the source into raw_* tables, validate into stg_* tables and record rejected_rows for as_of.

    source_schema: the PostgreSQL schema; None means the setting (env RELANCE_SOURCE_SCHEMA,
    default public). policy: the policy file (None: the shipped default), for its default_language."""
    from relance.core.policy import load_policy

    log = get_logger()
    default_language = load_policy(policy).default_language
    if source_schema is None:
        from relance.core.settings import get_settings

        source_schema = get_settings().source_schema
    workdir = Path(tempfile.mkdtemp(prefix="relance-extract-"))
    try:
        folder, labels = _extract(source, workdir, source_schema)
        with warehouse.open_db(db) as con:
            warehouse.ensure_schema(con)
            widen_sum_columns(con)
            rekey_charge_periods(con)
            drop_legacy_tables(con)
            load_seeds(con)
            load_macros(con)
            read = files.land_folder(con, folder, labels, generated=source_kind(source) != "files")
            warehouse.build(
                con,
                STAGING_TARGETS,
                {
                    "as_of": as_of,
                    "loaded_at": datetime.now(UTC).replace(tzinfo=None),
                    "default_language": default_language,
                },
            )
            loaded = {e: warehouse.scalar(con, f"select count(*) from stg_{e}") for e in ENTITIES}
            rejected = dict(
                con.execute(
                    "select entity, count(*) from rejected_rows where as_of = $d and action = 'rejected' group by entity",
                    {"d": as_of},
                ).fetchall()
            )
            dropped = warehouse.scalar(
                con, "select count(*) from rejected_rows where as_of = $d and action = 'field_dropped'", {"d": as_of}
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = IngestResult(
        source=redact_url(source),
        rows_read=read,
        rows_loaded=loaded,
        rows_rejected=sum(rejected.values()),
        fields_dropped=dropped,
        rejected_by_entity=rejected,
    )
    log.info(
        "ingest: loaded %s; rejected %d rows %s; %d fields dropped (contacts, languages)",
        ", ".join(f"{n} {e}" for e, n in loaded.items()),
        result.rows_rejected,
        rejected or "",
        dropped,
    )
    return result.as_dict()
