"""Issue 11 §6: what a user can cause is one line — `relance: error: …` naming the file or the
value, exit code 2 — never a traceback; and nothing is half-written that a re-run cannot repair.
(The full disk during dispatch is in test_faults.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write_source
from tests.fakes.scenario import customer, invoice

ROOT = Path(__file__).resolve().parent.parent
AS_OF = date(2026, 3, 16)


def subprocess_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relance.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def cli(monkeypatch, capsys):
    """`relance …` in this process (the same `main` as the console script: its error handling
    included); returns a CompletedProcess-like result."""
    from relance.cli import _DB, main

    def run(*args: str) -> subprocess.CompletedProcess:
        _DB.clear()
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["relance", *args])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def one_line_error(done: subprocess.CompletedProcess, starts: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"relance: error: {starts}"), done.stderr
    return lines[0]


@pytest.fixture
def src(tmp_path):
    return write_source(
        tmp_path / "src",
        customers=[customer("C001", "Client 1")],
        invoices=[invoice("F001", "C001", "2026-02-16", "2026-03-18", "100.00")],
    )


def _duckdb_file(path: Path) -> bytes:
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select range as i, 'row ' || range as s from range(200000)")
    return path.read_bytes()


def _make(kind: str, path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_duckdb":
        path.write_text("customer_id,name\nC1,Dupont\n", encoding="utf-8")
    elif kind == "truncated":
        data = _duckdb_file(path)
        path.write_bytes(data[:5000])
    elif kind == "corrupt":
        data = bytearray(_duckdb_file(path))
        data[4096:12288] = bytes(range(256)) * 32  # damaged database headers: checksum mismatch
        path.write_bytes(bytes(data))
    elif kind == "folder":
        path.mkdir()


def test_the_console_script_prints_one_line_without_a_traceback(tmp_path, src):
    db = tmp_path / "r.duckdb"
    db.write_text("not a database")
    one_line_error(
        subprocess_cli("run", "--as-of", AS_OF.isoformat(), "--source", str(src), "--db", str(db)),
        f"database {db} is not a DuckDB database file",
    )
    one_line_error(
        subprocess_cli("run", "--as-of", "0001-01-01", "--source", str(src), "--db", str(db)),
        "--as-of 0001-01-01 is out of range",
    )


@pytest.mark.parametrize(
    "kind, words",
    [
        ("empty", "is empty (0 bytes)"),
        ("not_duckdb", "is not a DuckDB database file"),
        ("truncated", "is truncated (5000 bytes)"),
        ("corrupt", "is corrupt (Corrupt database file"),
        ("folder", "is a folder"),
    ],
)
def test_a_db_that_cannot_be_used_is_one_line_naming_it_and_is_left_as_it_was(tmp_path, src, kind, words, cli):
    db = tmp_path / "r.duckdb"
    _make(kind, db)
    before = db.read_bytes() if db.is_file() else None
    line = one_line_error(
        cli("run", "--as-of", AS_OF.isoformat(), "--source", str(src), "--db", str(db)),
        f"--db {db}" if kind == "folder" else f"database {db} ",
    )
    assert words in line
    assert (db.read_bytes() if db.is_file() else None) == before
    assert not (tmp_path / "outbox" / AS_OF.isoformat()).exists()  # nothing of the run was written
    # the other verbs that open the file say the same
    done = cli("approve", "--as-of", AS_OF.isoformat(), "--all", "--db", str(db))
    assert words in one_line_error(done, f"--db {db}" if kind == "folder" else f"database {db} ")


def test_a_db_whose_folder_cannot_be_created(tmp_path, src, cli):
    (tmp_path / "afile").write_text("x")
    db = tmp_path / "afile" / "r.duckdb"
    one_line_error(
        cli("run", "--as-of", AS_OF.isoformat(), "--source", str(src), "--db", str(db)),
        f"database {db}: cannot create its folder {db.parent}",
    )


def test_an_outbox_that_is_a_file_stops_the_run_before_anything_is_written(tmp_path, src, cli):
    db, outbox = tmp_path / "r.duckdb", tmp_path / "outbox"
    outbox.write_text("not a folder")
    for args in (["run", "--source", str(src)], ["dispatch"], ["drafts"]):
        one_line_error(
            cli(*args, "--as-of", AS_OF.isoformat(), "--db", str(db), "--outbox", str(outbox)),
            f"--outbox {outbox} is a file, not a folder",
        )
    assert not db.exists()
    # the default outbox (beside the db) is checked the same way
    one_line_error(
        cli("run", "--as-of", AS_OF.isoformat(), "--source", str(src), "--db", str(db)),
        f"--outbox {outbox} is a file, not a folder",
    )
    assert not db.exists()
    # under a file: cannot be created
    one_line_error(
        cli(
            "run", "--as-of", AS_OF.isoformat(), "--source", str(src), "--db", str(db), "--outbox", str(outbox / "sub")
        ),
        f"--outbox {outbox / 'sub'}: the folder cannot be created",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_outbox_that_is_not_writable(tmp_path, src, cli):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    outbox.chmod(0o500)
    try:
        one_line_error(
            cli(
                "run",
                "--as-of",
                AS_OF.isoformat(),
                "--source",
                str(src),
                "--db",
                str(tmp_path / "r.duckdb"),
                "--outbox",
                str(outbox),
            ),
            f"--outbox {outbox}: the folder is not writable",
        )
    finally:
        outbox.chmod(0o700)


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"])
def test_an_as_of_out_of_range_is_one_line_naming_it(tmp_path, src, value, cli):
    db = tmp_path / "r.duckdb"
    expected = f"--as-of {value} is out of range: relance runs for dates from 1900-01-01 to 2199-12-31"
    for args in (
        ["run", "--source", str(src)],
        ["dispatch"],
        ["drafts"],
        ["approve", "--all"],
        ["report", "--out", str(tmp_path / "rep")],
    ):
        one_line_error(cli(*args, "--as-of", value, "--db", str(db)), expected)
    one_line_error(
        cli("backfill", "--start", value, "--end", "2026-03-16", "--source", str(src), "--db", str(db)),
        f"--start {value} is out of range",
    )
    one_line_error(
        cli("backfill", "--start", "2026-03-01", "--end", value, "--source", str(src), "--db", str(db)),
        f"--end {value} is out of range",
    )
    assert not db.exists()


def test_the_edges_of_the_date_range_are_accepted():
    from relance.core.dates import parse_date

    assert parse_date("1900-01-01", "--as-of") == date(1900, 1, 1)
    assert parse_date("2199-12-31", "--as-of") == date(2199, 12, 31)


def test_the_flow_path_raises_the_same_user_error(tmp_path, src):
    """Inside a Prefect flow run there is no CLI: the step raises DatabaseUnusable (a UserError,
    never retried), whose message is the same line."""
    from flows.nightly import nightly_run
    from relance.core.errors import DatabaseUnusable
    from tasks import warehouse

    db = tmp_path / "r.duckdb"
    db.write_bytes(b"")
    with pytest.raises(DatabaseUnusable, match=r"is empty \(0 bytes\)") as err:
        nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(DatabaseUnusable, match="is empty"):
        warehouse.connect(db, read_only=True)
