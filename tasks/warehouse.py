"""The DuckDB warehouse: opens the file (one writer at a time) and runs the SQL models in sql/.

A model is one file under sql/ holding one SELECT. Its header comments say what it is:

    -- grain: one row per invoice open at as_of
    -- materialized: incremental_as_of     (or: table, temp)

`table` replaces the table, `view` a view, `temp` builds a connection-local temp table,
`temp_view` a connection-local view (nothing is copied: its readers scan the tables under it),
and `incremental_as_of` replaces the rows of the run date only (delete where as_of = $as_of,
then insert by name), so that earlier dates stay. Parameters are DuckDB named parameters
(`$as_of`), bound by value — values are never formatted into SQL text. A temp view keeps its
parameters in session variables of its own (`SET VARIABLE relance_<view>_as_of = $as_of`, read
back with `getvariable('relance_<view>_as_of')`), set again each time the view is built.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from relance import SQL_DIR
from relance.errors import DatabaseBusy, DatabaseUnusable, UserError

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_MATERIALIZED = re.compile(r"^--\s*materialized:\s*(\w+)", re.M)


def connect(db: str | Path, *, read_only: bool = False, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file. When another process holds it, wait up to `wait_s` seconds
    (default: env RELANCE_DB_WAIT_S, else 0) for it to let go, then raise a clear DatabaseBusy."""
    db = Path(db)
    if db.is_dir():
        raise DatabaseUnusable(f"database {db} is a folder, not a DuckDB file: give a file path with --db")
    if not read_only:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"database {db}: cannot create its folder {db.parent} ({e.strerror or e})") from None
    if wait_s is None:
        from relance.settings import get_settings

        wait_s = get_settings().db_wait_s
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        try:
            con = duckdb.connect(str(db), read_only=read_only)
            break
        except duckdb.IOException as e:
            msg = str(e)
            if not re.search(r"\block\b", msg, re.I):  # not a lock held by another process ("block" is not one)
                raise unusable(db, e) from None
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            holder = re.search(r"PID (\d+)", msg)
            who = f" (process {holder.group(1)})" if holder else ""
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            raise DatabaseBusy(
                f"database {db} is in use by another relance run{who}{waited}; DuckDB allows one writer "
                "per file. Wait for that run to finish (or set RELANCE_DB_WAIT_S to wait), then try again."
            ) from None
        except duckdb.Error as e:  # a corrupt block (checksum), a file of another version …
            raise unusable(db, e) from None
    con.execute("set preserve_insertion_order = true")
    return con


def unusable(db: str | Path, e: BaseException) -> DatabaseUnusable:
    """One sentence for a --db file DuckDB cannot open or read, naming the file and what to do."""
    db = Path(db)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    low = text.lower()
    keep = "restore it from a backup (a new database would not know the dunning history nor what was already sent)"
    try:
        size = db.stat().st_size
    except OSError:
        size = None
    if "not a valid duckdb database file" in low:
        what = "is empty (0 bytes)" if size == 0 else "is not a DuckDB database file"
        return DatabaseUnusable(f"database {db} {what}: give another --db, or move this file away to start a new database")
    if "could not read enough bytes" in low:
        return DatabaseUnusable(f"database {db} is truncated ({size} bytes): {keep}")
    if "corrupt" in low or "checksum" in low:
        return DatabaseUnusable(f"database {db} is corrupt ({text}): {keep}")
    if "no space left" in low:
        return DatabaseUnusable(f"database {db}: the disk is full ({text}); free some space and run again")
    if "permission denied" in low or "read-only file system" in low:
        return DatabaseUnusable(f"database {db} cannot be opened for writing ({text}): check the file's permissions")
    if "version" in low and ("storage" in low or "serialization" in low or "duckdb" in low):
        return DatabaseUnusable(f"database {db} was written by another DuckDB version ({text})")
    return DatabaseUnusable(f"database {db} cannot be opened: {text}")


@contextmanager
def open_db(db: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(db, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract's tables if they do not exist yet (sql/ddl/*.sql, in name order)."""
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))


def bind_params(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The `$name` parameters `sql` uses, taken from `params` (a KeyError names any missing)."""
    names = set(_PARAM.findall(sql))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"SQL parameters not supplied: {sorted(missing)}")
    return {k: params[k] for k in names}


_bind = bind_params  # old name, still used by tasks/report.py (drop it when the report split lands)


def model_sql(model: str) -> str:
    return (SQL_DIR / f"{model}.sql").read_text(encoding="utf-8")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with transaction(con):` — one transaction, committed at the end of the block, rolled back on
    error. Blocks do not nest (DuckDB refuses a BEGIN inside a transaction): a commit here is a real
    commit, which the delivery ledger relies on (a claim is committed before any provider call).
    Other connections and cursors (measure_on works on its own cursor) see nothing before it."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def run_model(con: duckdb.DuckDBPyConnection, model: str, params: dict[str, Any] | None = None) -> float:
    """Build one model (e.g. "marts/aged_balance"); returns the seconds it took."""
    sql = model_sql(model)
    kind = (_MATERIALIZED.search(sql) or [None, "table"])[1]
    name = Path(model).name
    select = sql.strip().rstrip(";")
    bound = bind_params(select, params or {})
    started = time.perf_counter()
    if kind == "table":
        con.execute(f"create or replace table {name} as {select}", bound)
    elif kind == "view":
        if bound:
            raise ValueError(f"{model}: a view cannot take parameters ({sorted(bound)})")
        con.execute(f"create or replace view {name} as {select}")
    elif kind == "temp":
        con.execute(f"create or replace temp table {name} as {select}", bound)
    elif kind == "temp_view":
        for key, value in bound.items():  # one variable per view and parameter: views never share one
            con.execute(f"set variable relance_{name}_{key} = ${key}", {key: value})
        body = _PARAM.sub(lambda m: f"getvariable('relance_{name}_{m.group(1)}')", select)
        con.execute(f"create or replace temp view {name} as {body}")
    elif kind == "incremental_as_of":
        if "as_of" not in bound:
            bound["as_of"] = (params or {})["as_of"]
        with transaction(con):
            con.execute(f"delete from {name} where as_of = $as_of", {"as_of": bound["as_of"]})
            con.execute(f"insert into {name} by name {select}", bound)
    else:
        raise ValueError(f"{model}: unknown materialization {kind!r}")
    return time.perf_counter() - started


def run_models(con: duckdb.DuckDBPyConnection, models: list[str], params: dict[str, Any]) -> dict[str, float]:
    return {m: run_model(con, m, params) for m in models}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = con.execute(sql, params or {}).fetchone()
    return row[0] if row else None
