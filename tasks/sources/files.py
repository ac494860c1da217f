"""A folder of CSV or Parquet files (customers, invoices, payments, holds) → raw_* tables.

Every value lands as text; typing and validation happen in sql/staging so that a bad value
rejects its row with a reason instead of failing the load. A file that cannot be read at all
(not UTF-8, not CSV, a required column missing) raises a SourceError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from relance.errors import SourceError
from tasks.sources import COLUMNS, DATE_COLUMNS, ENTITIES, REQUIRED_COLUMNS, REQUIRED_ENTITIES

#: DuckDB types of Parquet naive timestamps: in a date column they are read as their date.
_NAIVE_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")

MAX_LINE_BYTES = 64 * 1024 * 1024  # a 10 MB field still loads; its row is then judged on its values

STRUCTURAL_REJECTS_DDL = """
create or replace temp table raw_structural_rejects (
    source varchar, entity varchar, row_number bigint, raw varchar, reason varchar
)
"""

_CSV_ERRORS = {
    "TOO MANY COLUMNS": "the line has more fields than the header",
    "MISSING COLUMNS": "the line has fewer fields than the header",
    "UNQUOTED VALUE": "a field has a quote character inside an unquoted value",
    "LINE SIZE OVER MAXIMUM": "the line is longer than 64 MB",
    "CAST ERROR": "a value could not be read",
}


def find_files(folder: Path) -> dict[str, Path | None]:
    """The file of each entity in a folder; SourceError for a missing folder, a missing
    required entity, or two files for one entity.

    Names match ignoring case (``Invoices.CSV`` is the invoices file, as an ERP export or a
    Windows user may name it); two files whose names differ only by case or extension
    (``INVOICES.csv`` and ``invoices.csv``, ``invoices.csv`` and ``Invoices.parquet``) are an
    error naming both — relance never silently picks one."""
    if not folder.is_dir():
        raise SourceError(f"source folder {folder} does not exist (expected customers.csv, invoices.csv, …)")
    by_entity: dict[str, list[Path]] = {e: [] for e in ENTITIES}
    for path in folder.iterdir():
        stem, dot, suffix = path.name.rpartition(".")
        if dot and stem.lower() in by_entity and suffix.lower() in ("csv", "parquet") and path.is_file():
            by_entity[stem.lower()].append(path)
    found: dict[str, Path | None] = {}
    for entity in ENTITIES:
        # .csv before .parquet, then by name (upper case first): the message is the same on every machine
        candidates = sorted(by_entity[entity], key=lambda p: (p.suffix.lower() == ".parquet", p.name))
        if len(candidates) > 1:
            names = [c.name for c in candidates]
            listed = f"both {names[0]} and {names[1]}" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
            raise SourceError(f"source folder {folder} has {listed}: keep only one")
        if not candidates and entity in REQUIRED_ENTITIES:
            raise SourceError(f"source folder {folder} has no {entity}.csv or {entity}.parquet")
        found[entity] = candidates[0] if candidates else None
    return found


def _sniff_text(path: Path, shown: str) -> None:
    with path.open("rb") as f:
        head = f.read(65536)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise SourceError(f"{shown}: the file is empty (it needs at least a header line)")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise SourceError(f"{shown}: the file is UTF-16 encoded; save it as UTF-8 CSV")
    if b"\x00" in head:
        raise SourceError(f"{shown}: this is not a CSV text file (it contains binary data)")


def _column_map(shown: str, entity: str, names: list[str]) -> dict[str, str]:
    """Map each contract column to the file's own column name (case, spaces and BOM ignored);
    SourceError when a required column is missing."""
    mapping: dict[str, str] = {}
    for name in names:
        mapping.setdefault(name.strip().lstrip("\ufeff").strip().lower().replace(" ", "_"), name)
    missing = [c for c in REQUIRED_COLUMNS[entity] if c not in mapping]
    if missing:
        raise SourceError(
            f"{shown}: required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
            f"(header found: {', '.join(names[:12]) or 'none'}); is it a comma-separated file with a header line?"
        )
    return mapping


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def land_file(
    con: duckdb.DuckDBPyConnection, entity: str, path: Path | None, source_label: str | None = None,
    *, generated: bool = False,
) -> int:
    """Create raw_<entity> from one file (or empty when path is None); returns its row count.

    Both are temp tables of this connection (ingest validates them into stg_* right after, and
    nothing else reads them): raw_<entity> the trimmed text of each column, and land_<entity> the
    rows as read, whose JSON (the `raw` of rejected_rows) is built for rejected rows only.

    `source_label` names the source in messages and rejected_rows (a PostgreSQL table, an API
    URL); `generated` marks CSV files written by relance itself (comma, double quotes), whose
    format is then set rather than sniffed."""
    table = f"raw_{entity}"
    cols = COLUMNS[entity]
    if path is None:
        col_defs = ", ".join(f"{c} varchar" for c in cols)
        con.execute(f"create or replace temp table {table} ({col_defs}, _source varchar, _row_number bigint)")
        con.execute(f"create or replace temp table land_{entity} ({col_defs})")
        return 0
    label = source_label or str(path)
    params = {"path": str(path)}
    if path.suffix.lower() == ".parquet":
        scan = "read_parquet($path)"
        try:
            described = con.execute(f"describe select * from {scan}", params).fetchall()
        except duckdb.Error as e:
            raise SourceError(f"{label}: not a readable Parquet file: {_first_line(e)}") from None
        names = [r[0] for r in described]
        types = {r[0]: r[1] for r in described}
        mapping = _column_map(label, entity, names)
        select_cols = ", ".join(
            f"nullif(trim(cast({_quote_ident(mapping[c])} as varchar)), '') as {c}" if c in mapping
            else f"cast(null as varchar) as {c}"
            for c in cols
        )
        # A date column written as a naive timestamp (pandas' datetime64) is its calendar date,
        # the time of day dropped, as for PostgreSQL timestamp columns. A timestamp with time
        # zone is left as text (and its rows rejected with the reason): Parquet keeps the instant
        # in UTC, not the zone it was entered in, so its calendar date is not known.
        date_columns = {mapping[c] for c in DATE_COLUMNS if c in mapping}

        def as_text(n: str) -> str:
            value = _quote_ident(n)
            if n in date_columns and types[n] in _NAIVE_TIMESTAMPS:
                value = f"cast({value} as date)"
            return f"cast({value} as varchar) as {_quote_ident(n)}"

        src_cols = ", ".join(as_text(n) for n in names)
        con.execute(
            f"create or replace temp table _land as select {src_cols} from read_parquet($path)", params
        )
    else:
        _sniff_text(path, label)
        # the rejects of an earlier file must not be reported again under this one
        con.execute("drop table if exists _land_rejects")
        con.execute("drop table if exists _land_scan")
        scan = (
            "read_csv($path, all_varchar = true, header = true, store_rejects = true, "
            "rejects_table = '_land_rejects', rejects_scan = '_land_scan', "
            f"max_line_size = {MAX_LINE_BYTES}, encoding = 'utf-8'"
            + (", delim = ',', quote = '\"', escape = '\"'" if generated else "")
            + ")"
        )
        try:
            names = [r[0] for r in con.execute(f"describe select * from {scan}", params).fetchall()]
        except duckdb.Error as e:
            raise _csv_error(label, e) from None
        mapping = _column_map(label, entity, names)
        try:
            con.execute(f"create or replace temp table _land as select * from {scan}", params)
        except duckdb.Error as e:
            raise _csv_error(label, e) from None
        rejects = con.execute(
            "select error_type, line, csv_line, error_message from _land_rejects order by line"
        ).fetchall()
        bad_encoding = [r for r in rejects if r[0] == "INVALID ENCODING"]
        if bad_encoding:
            raise SourceError(
                f"{label}: the file is not UTF-8 encoded (first bad line: {bad_encoding[0][1]}); "
                "save it as UTF-8 CSV"
            )
        for error_type, line, csv_line, message in rejects:
            reason = f"{_CSV_ERRORS.get(error_type, error_type.lower())} ({message}); fix the line and reload"
            con.execute(
                "insert into raw_structural_rejects values ($source, $entity, $row, $raw, $reason)",
                {"source": label, "entity": entity, "row": line, "raw": csv_line, "reason": reason},
            )
        select_cols = ", ".join(
            f"nullif(trim({_quote_ident(mapping[c])}), '') as {c}" if c in mapping
            else f"cast(null as varchar) as {c}"
            for c in cols
        )
    # rowid is the position in the file (insertion order is preserved); row 1 is the header.
    con.execute(
        f"create or replace temp table {table} as "
        f"select {select_cols}, $label as _source, rowid + 2 as _row_number from _land order by rowid",
        {"label": label},
    )
    con.execute(f"drop table if exists land_{entity}")
    con.execute(f"alter table _land rename to land_{entity}")  # same rows, same rowids
    return con.execute(f"select count(*) from {table}").fetchone()[0]


def _csv_error(shown: str, e: Exception) -> SourceError:
    text = str(e)
    if "Invalid unicode" in text or "not utf-8" in text.lower():
        return SourceError(f"{shown}: the file is not UTF-8 encoded; save it as UTF-8 CSV")
    return SourceError(f"{shown}: cannot be read as CSV: {_first_line(e)}")


def land_folder(
    con: duckdb.DuckDBPyConnection, folder: Path, labels: dict[str, str] | None = None, *, generated: bool = False
) -> dict[str, int]:
    """Land every entity of a folder; returns rows landed per entity."""
    files = find_files(folder)
    con.execute(STRUCTURAL_REJECTS_DDL)
    return {e: land_file(con, e, p, (labels or {}).get(e), generated=generated) for e, p in files.items()}
