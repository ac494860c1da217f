"""A PostgreSQL schema (tables customers, invoices, payments, holds) → a folder of CSV files.

Each table is read set-based with ``COPY (SELECT "col", … FROM schema.table) TO STDOUT (FORMAT
csv, HEADER true)`` and streamed straight into ``<entity>.csv``; nothing is read row by row. The
four tables are read in one REPEATABLE READ READ ONLY transaction, so they are one consistent
snapshot even while the ERP keeps writing. Values arrive as PostgreSQL's text output: dates as
YYYY-MM-DD (DateStyle ISO), numerics as their exact decimal text, booleans as t/f — the staging
models type and validate them like any file. The folder is then loaded by
``tasks.sources.files.land_folder``.

Date columns typed ``timestamp`` or ``timestamptz`` (many ERPs store a date as a midnight
timestamp) are cast to ``date`` in that SELECT, so they arrive as YYYY-MM-DD like a ``date``
column. The cast drops the time of day — it never rounds: an invoice entered 2024-03-15 23:59 is
dated 2024-03-15, its calendar date as the ERP shows it. A ``timestamptz`` (an instant) is first
converted to the time zone of the connection: the server's ``TimeZone`` setting (or the
database's or role's, i.e. what the ERP's own sessions see), which a URL can set with
``?options=-c%20TimeZone%3DEurope/Paris``. Other columns are read as they are.

Table and schema names are matched exactly first, then case-insensitively (an ERP that created
``"Invoices"`` still works). customers and invoices are required; payments and holds may be
absent (none of them then). Every problem a user must fix raises a ``SourceError`` with one
sentence naming the server, schema or table — never the password.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import psycopg
from psycopg import sql

from relance.core.errors import SourceError
from relance.core.urls import escape_userinfo, redact_url, scrub, split_url, user_of
from tasks.sources import DATE_COLUMNS, ENTITIES, REQUIRED_COLUMNS, REQUIRED_ENTITIES

CONNECT_TIMEOUT_S = 10

#: Relation kinds that can be read: table, view, materialized view, partitioned table, foreign table.
_READABLE_KINDS = ("r", "v", "m", "p", "f")

#: Base types (format_type of the column, or of its domain's base type) that are cast to date.
_TIMESTAMP_TYPES = ("timestamp without time zone", "timestamp with time zone")


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _connect_error(e: psycopg.Error, url: str, where: str) -> SourceError:
    """One clear sentence for a failed connection, from libpq's message."""
    text = str(e)
    low = text.lower()
    parts = split_url(url)
    user = user_of(url) or "(default user)"
    dbname = unquote(parts.path.lstrip("/")) if parts and parts.path.lstrip("/") else user
    host = re.sub(r":[0-9]*$", "", parts.hosts) if parts else ""
    if "password authentication failed" in low or "authentication failed" in low:
        msg = f"PostgreSQL at {where} refused the login of user {user!r} (authentication failed); check the user and password"
    elif "no password supplied" in low or "password is required" in low:
        msg = f"PostgreSQL at {where} asks for a password for user {user!r} and none was given (put it in the URL, PGPASSWORD or ~/.pgpass)"
    elif "no pg_hba.conf entry" in low:
        msg = f"PostgreSQL at {where} does not allow this client to connect (no pg_hba.conf entry for user {user!r})"
    elif re.search(r'database ".*" does not exist', low):
        msg = f"PostgreSQL at {where}: database {dbname!r} does not exist"
    elif re.search(r'role ".*" does not exist', low):
        msg = f"PostgreSQL at {where}: user {user!r} does not exist"
    elif "connection refused" in low:
        msg = f"cannot connect to PostgreSQL at {where}: connection refused (is the server running and accepting TCP/IP connections on that host and port?)"
    elif "timeout expired" in low or "timed out" in low:
        msg = f"cannot connect to PostgreSQL at {where}: no answer within {CONNECT_TIMEOUT_S} s (check the host, port and firewall)"
    elif "could not translate host name" in low or "name or service not known" in low or "nodename nor servname" in low:
        msg = f"cannot connect to PostgreSQL at {where}: the host name {host!r} is unknown"
    elif "invalid" in low and ("dsn" in low or "uri" in low or "connection option" in low):
        msg = f"the PostgreSQL URL {where} is not valid: {_first_line(e).removeprefix('connection is bad: ')}"
    else:
        msg = f"cannot connect to PostgreSQL at {where}: {_first_line(e)}"
    return SourceError(scrub(msg, url))


def _find(names: list[str], wanted: str) -> str | None:
    """The exact name if present, else the single case-insensitive match."""
    if wanted in names:
        return wanted
    matches = [n for n in names if n.lower() == wanted.lower()]
    return matches[0] if len(matches) == 1 else None


def _normalize(column: str) -> str:
    return column.strip().lower().replace(" ", "_")


def extract(url: str, schema: str, workdir: Path) -> tuple[Path, dict[str, str]]:
    """COPY the source tables of `schema` into workdir/postgres/<entity>.csv; returns (folder, labels)."""
    where = redact_url(url)
    schema = (schema or "public").strip()
    folder = Path(workdir) / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        conn = psycopg.connect(
            escape_userinfo(url), connect_timeout=CONNECT_TIMEOUT_S, application_name="relance", client_encoding="UTF8"
        )
    except psycopg.Error as e:
        raise _connect_error(e, url, where) from None
    labels: dict[str, str] = {}
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute("SET LOCAL DateStyle TO ISO")
                schemas = [r[0] for r in cur.execute("SELECT nspname FROM pg_catalog.pg_namespace").fetchall()]
                real_schema = _find(schemas, schema)
                if real_schema is None:
                    raise SourceError(
                        f"PostgreSQL at {where}: schema {schema!r} does not exist "
                        "(give the schema that holds customers, invoices, payments and holds with --source-schema)"
                    )
                tables = [
                    r[0]
                    for r in cur.execute(
                        "SELECT c.relname FROM pg_catalog.pg_class c "
                        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind = ANY(%s)",
                        (real_schema, list(_READABLE_KINDS)),
                    ).fetchall()
                ]
                found = {e: _find(tables, e) for e in ENTITIES}
                missing = [e for e in REQUIRED_ENTITIES if found[e] is None]
                if missing:
                    raise SourceError(
                        f"PostgreSQL at {where}: table{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(f'{real_schema}.{m}' for m in missing)} "
                        f"{'do' if len(missing) > 1 else 'does'} not exist "
                        f"(tables in schema {real_schema}: {', '.join(sorted(tables)[:20]) or 'none'})"
                    )
                for entity, table in found.items():
                    if table is None:
                        continue
                    label = f"{where} {real_schema}.{table}"
                    columns = _check_columns(cur, real_schema, table, entity, label)
                    _copy_table(cur, _select(real_schema, table, columns), folder / f"{entity}.csv", label)
                    labels[entity] = label
    except SourceError:
        raise
    except psycopg.OperationalError as e:
        raise SourceError(
            scrub(f"PostgreSQL at {where}: the connection failed while reading: {_first_line(e)}", url)
        ) from None
    except psycopg.Error as e:
        raise SourceError(scrub(f"PostgreSQL at {where}: reading failed: {_first_line(e)}", url)) from None
    finally:
        conn.close()
    return folder, labels


def _check_columns(cur: psycopg.Cursor, schema: str, table: str, entity: str, label: str) -> list[tuple[str, str]]:
    """The table's (column, base type) in order; fails with the table's name (not a temp
    file's) when a required column is missing."""
    described = cur.execute(
        "SELECT a.attname, "
        "pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL) "
        "FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    columns = [r[0] for r in described]
    have = {_normalize(c) for c in columns}
    missing = [c for c in REQUIRED_COLUMNS[entity] if c not in have]
    if missing:
        raise SourceError(
            f"{label}: required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
            f"(columns found: {', '.join(columns[:20]) or 'none'})"
        )
    return [(name, type_name) for name, type_name in described]


def _select(schema: str, table: str, columns: list[tuple[str, str]]) -> sql.Composed:
    """SELECT every column under its own name; a contract date column typed timestamp or
    timestamptz is cast to date (the calendar date, in the session's time zone for timestamptz)."""
    items = [
        sql.SQL("CAST({} AS date) AS {}").format(sql.Identifier(name), sql.Identifier(name))
        if _normalize(name) in DATE_COLUMNS and type_name in _TIMESTAMP_TYPES
        else sql.Identifier(name)
        for name, type_name in columns
    ]
    return sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(items), sql.Identifier(schema), sql.Identifier(table)
    )


def _copy_table(cur: psycopg.Cursor, select: sql.Composed, path: Path, label: str) -> None:
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select)
    try:
        with path.open("wb") as out, cur.copy(statement) as copy:
            for chunk in copy:
                out.write(chunk)
    except psycopg.errors.InsufficientPrivilege:
        raise SourceError(f"{label}: permission denied (the user needs SELECT on this table)") from None
    except psycopg.OperationalError:
        raise
    except psycopg.Error as e:
        raise SourceError(f"{label}: cannot be read: {_first_line(e)}") from None
