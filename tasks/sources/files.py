"""A folder of CSV or Parquet files (customers, invoices, payments, holds) → raw_* tables.

Every value lands as text; typing and validation happen in sql/staging so that a bad value
rejects its row with a reason instead of failing the load. A file that cannot be read at all
(not UTF-8, not CSV, a required column missing) raises a SourceError naming the file.
"""

from __future__ import annotations

import codecs
import csv
import functools
from pathlib import Path

import duckdb
import pyarrow as pa

from relance.core.errors import SourceError
from tasks.sources import COLUMNS, DATE_COLUMNS, ENTITIES, REQUIRED_COLUMNS, REQUIRED_ENTITIES

#: DuckDB types of Parquet naive timestamps: in a date column they are read as their date.
_NAIVE_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")

MAX_LINE_BYTES = 64 * 1024 * 1024  # the longest value read: a 10 MB field still loads and is judged on its values

STRUCTURAL_REJECTS_DDL = """
create or replace temp table raw_structural_rejects (
    source varchar, entity varchar, row_number bigint, raw varchar, reason varchar
)
"""


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
            listed = (
                f"both {names[0]} and {names[1]}" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
            )
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
        key = name.strip().lstrip("\ufeff").strip().lower().replace(" ", "_")
        if key in mapping:
            same = "" if mapping[key] == name else f" (as {mapping[key]!r} and {name!r})"
            raise SourceError(f"{shown}: the header names column {key!r} twice{same}; keep one column of each name")
        mapping[key] = name
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
    con: duckdb.DuckDBPyConnection,
    entity: str,
    path: Path | None,
    source_label: str | None = None,
    *,
    generated: bool = False,
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
        con.execute(
            f"create or replace temp table {table} ({col_defs}, _source varchar, _row_number bigint, _land_row bigint)"
        )
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
        # a fleet shard's source (tasks/fleet/split.py) carries each row's original file and row
        # number: rejected_rows name the line of the source the fleet split, not of the shard's file
        carried = {"_relance_source", "_relance_row"} <= {r[0] for r in described}
        names = [r[0] for r in described if not (carried and r[0] in ("_relance_source", "_relance_row"))]
        types = {r[0]: r[1] for r in described}
        import pyarrow.parquet as pq

        try:  # the file's own names: DuckDB renames a repeated one (amount, AMOUNT_1)
            own = pq.read_schema(path).names
            _column_map(label, entity, [n for n in own if not (carried and n in ("_relance_source", "_relance_row"))])
        except (OSError, pa.ArrowException):
            pass  # DuckDB read it: its names are the ones checked below
        mapping = _column_map(label, entity, names)
        select_cols = ", ".join(
            f"nullif(trim(cast({_quote_ident(mapping[c])} as varchar)), '') as {c}"
            if c in mapping
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
        con.execute(f"create or replace temp table _land as select {src_cols} from read_parquet($path)", params)
        if carried:
            con.execute(
                "create or replace temp table _land_numbers as select row_number() over () - 1 as i, "
                "_relance_row as n, _relance_source as s from read_parquet($path)",
                params,
            )
    else:
        carried = False
        _sniff_text(path, label)
        mapping = _land_csv(con, path, label, entity, generated)
        select_cols = ", ".join(
            f"nullif(trim({_quote_ident(mapping[c])}), '') as {c}" if c in mapping else f"cast(null as varchar) as {c}"
            for c in cols
        )
    source_col = "$label"
    if path.suffix.lower() == ".parquet" and carried:
        row_number, join = "_land_numbers.n", "join _land_numbers on _land_numbers.i = _land.rowid"
        source_col = "coalesce(_land_numbers.s, $label)"
    elif path.suffix.lower() == ".parquet":
        # rowid is the position in the file (insertion order is preserved); row 1 is the header.
        row_number, join = "_land.rowid + 2", ""
    else:  # the row a spreadsheet shows (see _read_csv)
        row_number, join = "_land_numbers.n", "join _land_numbers on _land_numbers.i = _land.rowid"
    con.execute(
        f"create or replace temp table {table} as "
        f"select {select_cols}, {source_col} as _source, {row_number} as _row_number, _land.rowid as _land_row "
        f"from _land {join} order by _land.rowid",
        {"label": label},
    )
    con.execute("drop table if exists _land_numbers")
    con.execute(f"drop table if exists land_{entity}")
    con.execute(f"alter table _land rename to land_{entity}")  # same rows, same rowids
    return con.execute(f"select count(*) from {table}").fetchall()[0][0]


#: In a fleet shard's source folder: the lines of the split source that could not be read as rows.
STRUCTURAL_REJECTS_FILE = "_structural_rejects.parquet"

_DELIMITERS = (",", ";", "\t", "|")


_BATCH_ROWS = 50_000  # rows held in memory at once while a CSV file is landed


def _land_csv(con: duckdb.DuckDBPyConnection, path: Path, label: str, entity: str, generated: bool) -> dict[str, str]:
    """Land a CSV file into the temp tables _land (its columns, as text) and _land_numbers (i, n):
    row i of _land (its rowid) is row n of the file. A line whose field count differs from the
    header's goes to raw_structural_rejects with its row number and text. Returns the column map.

    Row numbers are the rows a spreadsheet shows when it opens the file: the header is row 1
    (when it is the first line), every line is a row — blank lines included, as a spreadsheet
    shows them, though they load nothing — and a quoted value that spans several lines stays in
    its one row (a text editor would count its lines). The delimiter is the one of , ; tab |
    most frequent in the header line (, for files relance writes itself); quotes are ", doubled
    inside a quoted value (RFC 4180). The file is read in batches: memory does not grow with it.

    A file without any double quote (no quoted value, so every row is one line) is landed by
    DuckDB's own reader (`_land_plain_csv`, the same rows, numbers and rejects, ~3× faster);
    any other file, or one DuckDB cannot read, by Python's csv module."""
    newline = _plain_newline(path)
    if newline is not None:
        try:
            mapping = _land_plain_csv(con, path, label, entity, generated, newline)
        except duckdb.Error:
            mapping = None  # e.g. a line over DuckDB's maximum line size: the csv module reads it
        if mapping is not None:
            return mapping
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return _land_csv_text(con, f, label, entity, generated)
    except UnicodeDecodeError:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):  # noqa: B007 (the message names it)
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    break
        raise SourceError(
            f"{label}: the file is not UTF-8 encoded (first bad line: {number}); save it as UTF-8 CSV"
        ) from None


def _delimiter(header_line: str, generated: bool) -> str:
    """The delimiter of , ; tab | most frequent in the header line (, for files relance writes)."""
    if generated:
        return ","
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    return max(_DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else ","


def _header_names(fields: list[str]) -> list[str]:
    """The header's column names; a blank one is named by its position (column3)."""
    return [n if n.strip() else f"column{i}" for i, n in enumerate(fields)]


_SCAN_BYTES = 8 * 1024 * 1024


@functools.cache
def _whitespace() -> str:
    """What str.strip() strips: a line of these alone is a blank line (as the csv module path reads it)."""
    return "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def _plain_newline(path: Path) -> str | None:
    """The line ending of a CSV file DuckDB can land line for line ("\\n" or "\\r\\n"), or None:
    the file holds a double quote (a quoted value may span lines or hold a delimiter), a NUL or a
    \\x01 byte, is not UTF-8, or mixes line endings (a bare \\r ends a row for the csv module)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = crlf = returns = 0
    ends_in_cr = False
    with path.open("rb") as f:
        while chunk := f.read(_SCAN_BYTES):
            if b'"' in chunk or b"\x00" in chunk or b"\x01" in chunk:
                return None
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return None
            newlines += chunk.count(b"\n")
            returns += chunk.count(b"\r")
            crlf += chunk.count(b"\r\n") + (ends_in_cr and chunk.startswith(b"\n"))  # \r\n across two chunks
            ends_in_cr = chunk.endswith(b"\r")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    if returns == 0:
        return "\\n"
    if returns == crlf == newlines:
        return "\\r\\n"
    return None  # mixed line endings or a bare \r: the csv module's business


def _land_plain_csv(con, path: Path, label: str, entity: str, generated: bool, newline: str) -> dict[str, str] | None:
    """_land and _land_numbers from a CSV file without double quotes (see _plain_newline), read by
    DuckDB line for line: row n of the file is line n (blank lines counted, none spans lines), a
    row's fields are its line split at the delimiter, and a line whose field count differs from
    the header's goes to raw_structural_rejects, as the csv module path does. None when the file
    has no header line (the csv module path says so)."""
    con.execute(
        "create or replace temp table _land_lines as select line from read_csv($path, columns = {'line': 'VARCHAR'}, "
        "delim = chr(1), quote = '', escape = '', header = false, auto_detect = false, new_line = $newline, "
        "strict_mode = false, max_line_size = $max_line)",
        {"path": str(path), "newline": newline, "max_line": MAX_LINE_BYTES},
    )
    ws = {"ws": _whitespace()}
    head = con.execute(
        "select rowid, line from _land_lines where trim(coalesce(line, ''), $ws) <> '' order by rowid limit 1", ws
    ).fetchone()
    if head is None:
        con.execute("drop table _land_lines")
        return None
    header_row, header_line = head
    delimiter = _delimiter(header_line, generated)
    header = _header_names(header_line.split(delimiter))
    mapping = _column_map(label, entity, header)
    width = len(header)
    params = {"k": width}
    con.execute(
        """
        create or replace temp table _land_rows as
        select rowid + 1 as n, line, string_split(line, $d) as fields from _land_lines
        where rowid > $h and line is not null and not (strpos(line, $d) = 0 and trim(line, $ws) = '')
        order by rowid
        """,
        {"d": delimiter, "h": header_row, **ws},
    )
    columns = ", ".join(f"nullif(fields[{i + 1}], '') as {_quote_ident(n)}" for i, n in enumerate(header))
    con.execute(
        f"create or replace temp table _land as select {columns} from _land_rows where len(fields) = $k order by n",
        params,
    )
    con.execute(
        "create or replace temp table _land_numbers as select cast(row_number() over (order by n) - 1 as bigint) as i, n "
        "from _land_rows where len(fields) = $k order by n",
        params,
    )
    con.execute(
        """
        insert into raw_structural_rejects
        select $source, $entity, n, line,
               'the line has ' || case when len(fields) > $k then 'more' else 'fewer' end
               || ' fields than the header (' || len(fields) || ' fields, the header has ' || $k
               || '); fix the line and reload'
        from _land_rows where len(fields) <> $k order by n
        """,
        {**params, "source": label, "entity": entity},
    )
    con.execute("drop table _land_rows")
    con.execute("drop table _land_lines")
    return mapping


def _land_csv_text(con, f, label: str, entity: str, generated: bool) -> dict[str, str]:
    lines: list[str] = []

    def source():
        for line in f:
            lines.append(line)
            yield line

    csv.field_size_limit(MAX_LINE_BYTES)
    feed = source()
    blank_lead: list[str] = []  # the delimiter is read from the header line: find it first
    for line in feed:
        if line.strip():
            break
        blank_lead.append(line)
    header_line = lines[-1] if lines and lines[-1].strip() else ""
    if not header_line:
        raise SourceError(f"{label}: the file is empty (it needs at least a header line)")
    delimiter = _delimiter(header_line, generated)
    lines.clear()

    def replay():
        lines.append(header_line)
        yield header_line
        yield from feed

    reader = csv.reader(replay(), delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    row = len(blank_lead)
    header: list[str] | None = None
    mapping: dict[str, str] = {}
    batch: list[list[str]] = []
    numbers: list[int] = []
    landed = 0
    empty_is_null = ""

    def flush() -> None:
        nonlocal landed
        columns = list(zip(*batch)) if batch else [()] * len(header)
        land = pa.table(
            [pa.array(col, type=pa.string()) for col in columns], names=[f"c{i}" for i in range(len(header))]
        )
        index = pa.table(
            {
                "i": pa.array(range(landed, landed + len(batch)), type=pa.int64()),
                "n": pa.array(numbers, type=pa.int64()),
            }
        )
        con.register("_land_batch", land)
        con.register("_land_batch_numbers", index)
        try:
            con.execute("insert into _land select " + empty_is_null + " from _land_batch")
            con.execute("insert into _land_numbers select * from _land_batch_numbers")
        finally:
            con.unregister("_land_batch")
            con.unregister("_land_batch_numbers")
        landed += len(batch)
        batch.clear()
        numbers.clear()

    try:
        for record in reader:
            row += 1
            text = lines.copy() if len(record) != len(header or record) else None  # the raw text of a bad line
            lines.clear()
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line: a row of the spreadsheet, nothing to load
            if header is None:
                header = _header_names(record)
                mapping = _column_map(label, entity, header)
                con.execute(
                    "create or replace temp table _land ("
                    + ", ".join(f"{_quote_ident(n)} varchar" for n in header)
                    + ")"
                )
                con.execute("create or replace temp table _land_numbers (i bigint, n bigint)")
                empty_is_null = ", ".join(f"nullif(c{i}, '')" for i in range(len(header)))  # as DuckDB reads CSV
                continue
            if len(record) != len(header):
                more = len(record) > len(header)
                reason = (
                    f"the line has {'more' if more else 'fewer'} fields than the header "
                    f"({len(record)} fields, the header has {len(header)}); fix the line and reload"
                )
                con.execute(
                    "insert into raw_structural_rejects values ($source, $entity, $row, $raw, $reason)",
                    {
                        "source": label,
                        "entity": entity,
                        "row": row,
                        "raw": "".join(text).rstrip("\r\n"),
                        "reason": reason,
                    },
                )
                continue
            batch.append(record)
            numbers.append(row)
            if len(batch) >= _BATCH_ROWS:
                flush()
    except csv.Error as e:
        raise SourceError(f"{label}: cannot be read as CSV at row {row + 1}: {e}") from None
    flush()
    return mapping


def land_folder(
    con: duckdb.DuckDBPyConnection, folder: Path, labels: dict[str, str] | None = None, *, generated: bool = False
) -> dict[str, int]:
    """Land every entity of a folder; returns rows landed per entity."""
    files = find_files(folder)
    con.execute(STRUCTURAL_REJECTS_DDL)
    carried = folder / STRUCTURAL_REJECTS_FILE
    if carried.is_file():  # a fleet shard's: the split source's unreadable lines (shard 0 holds them)
        con.execute(
            "insert into raw_structural_rejects select source, entity, row_number, raw, reason from read_parquet($p)",
            {"p": str(carried)},
        )
    return {e: land_file(con, e, p, (labels or {}).get(e), generated=generated) for e, p in files.items()}
