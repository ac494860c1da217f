"""Bad input is rejected row by row with an actionable reason (contract §1); a file that cannot be
read at all stops the run with one clear message naming the file."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.nightly import nightly_run
from relance.errors import SourceError

AS_OF = date(2026, 3, 31)
GOOD_CUSTOMER = {"customer_id": "C1", "name": "Alpha SARL"}
OTHER_CUSTOMER = {"customer_id": "C2", "name": "Beta GmbH", "country": "DE", "language": "en"}
GOOD_INVOICE = {"invoice_id": "I1", "customer_id": "C1", "issue_date": "2026-01-01", "due_date": "2026-01-31", "amount": "100.00"}
GBP_INVOICE = {**GOOD_INVOICE, "invoice_id": "IG", "currency": "GBP"}
OTHER_INVOICE = {**GOOD_INVOICE, "invoice_id": "I2", "customer_id": "C2"}
CREDIT_NOTE = {**GOOD_INVOICE, "invoice_id": "CN", "kind": "credit_note", "amount": "10.00"}


def run_and_reject(source_writer, tmp_path, **entities):
    src = source_writer(**entities)
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute(
            "select entity, row_number, reason, action from rejected_rows where as_of = ? order by entity, row_number",
            [AS_OF],
        ).fetchall()
    return summary, rejects, db


CUSTOMER_CASES = [
    ({"customer_id": "", "name": "No id"}, "customer_id is missing"),
    ({"customer_id": "C9", "name": ""}, "name is missing"),
    ({"customer_id": "C9", "name": "X", "country": "France"}, "country 'France' is not an ISO 3166 two-letter code"),
    ({"customer_id": "C9", "name": "X", "language": "de"}, "language 'de' is not fr or en"),
    ({"customer_id": "C9", "name": "X", "segment": "b2g"}, "segment 'b2g' is not b2b or b2c"),
    ({"customer_id": "C9", "name": "X", "dunning_block": "maybe"}, "dunning_block 'maybe' is not true or false"),
    ({"customer_id": "C1", "name": "Twin"}, "duplicate customer_id 'C1' (first seen on row 2, which is kept)"),
]


@pytest.mark.parametrize("row,reason", CUSTOMER_CASES, ids=[c[1][:30] for c in CUSTOMER_CASES])
def test_customer_rules(source_writer, tmp_path, row, reason):
    summary, rejects, _ = run_and_reject(
        source_writer, tmp_path, customers=[GOOD_CUSTOMER, row], invoices=[GOOD_INVOICE]
    )
    assert [(e, n, a) for e, n, _, a in rejects] == [("customers", 3, "rejected")]
    assert reason in rejects[0][2]
    assert summary["ingest"]["rows_loaded"]["customers"] == 1
    assert summary["ingest"]["rows_loaded"]["invoices"] == 1  # the run goes on with the valid rows
    assert summary["ingest"]["rows_rejected"] == 1


INVOICE_CASES = [
    ({"customer_id": "C9"}, "customer_id 'C9' is not a known customer"),
    ({"amount": "-5.00"}, "amount -5.00 is negative"),
    ({"amount": "abc"}, "amount 'abc' is not a number written like 1234.56"),
    ({"amount": "1 234,56"}, "amount '1 234,56' uses a comma"),
    ({"amount": "1.234"}, "amount 1.234 has more than 2 decimals"),
    ({"amount": "0.00"}, "amount must be greater than 0"),
    ({"amount": ""}, "amount is missing (required)"),
    ({"issue_date": "2026-02-30", "due_date": "2026-03-30"}, "issue_date 2026-02-30 is not a real calendar date"),
    ({"due_date": "31/01/2026"}, "due_date '31/01/2026' is not a date written YYYY-MM-DD"),
    ({"due_date": ""}, "due_date is missing (required)"),
    ({"issue_date": "2026-02-01", "due_date": "2026-01-31"}, "due_date 2026-01-31 is before issue_date 2026-02-01"),
    ({"currency": "EURO"}, "currency 'EURO' is not an ISO 4217 code"),
    ({"kind": "proforma"}, "kind 'proforma' is not invoice or credit_note"),
    ({"invoice_id": "I1"}, "duplicate invoice_id 'I1' (first seen on row 2, which is kept)"),
    ({"invoice_id": ""}, "invoice_id is missing"),
]


@pytest.mark.parametrize("change,reason", INVOICE_CASES, ids=[c[1][:40] for c in INVOICE_CASES])
def test_invoice_rules(source_writer, tmp_path, change, reason):
    bad = {**GOOD_INVOICE, "invoice_id": "I9", **change}
    summary, rejects, _ = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE, bad])
    assert [(e, n, a) for e, n, _, a in rejects] == [("invoices", 3, "rejected")]
    assert reason in rejects[0][2], rejects[0][2]
    assert summary["ingest"]["rows_loaded"]["invoices"] == 1


def test_an_invoice_of_a_rejected_customer_is_rejected_too(source_writer, tmp_path):
    _, rejects, _ = run_and_reject(
        source_writer, tmp_path,
        customers=[GOOD_CUSTOMER, {"customer_id": "C2", "name": "X", "country": "XX"}],
        invoices=[GOOD_INVOICE, OTHER_INVOICE],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("customers", 3), ("invoices", 3)]
    assert "its row was rejected" in rejects[1][2]


def test_several_problems_are_all_named(source_writer, tmp_path):
    bad = {"invoice_id": "I9", "customer_id": "C1", "issue_date": "2026-13-01", "due_date": "", "amount": "x", "currency": "ZZZ"}
    _, rejects, _ = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[bad])
    reason = rejects[0][2]
    for part in ("issue_date 2026-13-01 is not a real calendar date", "due_date is missing", "amount 'x'", "currency 'ZZZ'"):
        assert part in reason


PAYMENT_CASES = [
    ({"invoice_id": "NOPE"}, "invoice_id 'NOPE' is not a known invoice"),
    ({"invoice_id": "I2"}, "invoice I2 belongs to customer C2, not C1"),
    ({"invoice_id": "IG"}, "invoice IG is in GBP, the payment in EUR"),
    ({"invoice_id": "CN"}, "invoice_id CN is a credit note"),
    ({"customer_id": "C7"}, "customer_id 'C7' is not a known customer"),
    ({"paid_date": ""}, "paid_date is missing"),
    ({"paid_date": "2026-04-31"}, "paid_date 2026-04-31 is not a real calendar date"),
    ({"amount": "0"}, "amount must be greater than 0"),
    ({"currency": "usd$"}, "currency 'usd$' is not an ISO 4217 code"),
    ({"payment_id": "P1"}, "duplicate payment_id 'P1'"),
]


@pytest.mark.parametrize("change,reason", PAYMENT_CASES, ids=[c[1][:40] for c in PAYMENT_CASES])
def test_payment_rules(source_writer, tmp_path, change, reason):
    good = {"payment_id": "P1", "customer_id": "C1", "invoice_id": "I1", "paid_date": "2026-02-01", "amount": "10.00"}
    bad = {**good, "payment_id": "P9", **change}
    _, rejects, _ = run_and_reject(
        source_writer, tmp_path, customers=[GOOD_CUSTOMER, OTHER_CUSTOMER],
        invoices=[GOOD_INVOICE, OTHER_INVOICE, GBP_INVOICE, CREDIT_NOTE], payments=[good, bad],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("payments", 3)]
    assert reason in rejects[0][2], rejects[0][2]


HOLD_CASES = [
    ({"kind": "vacation"}, "kind 'vacation' is not one of dispute, promise, payment_plan, legal, other"),
    ({"kind": ""}, "kind is missing"),
    ({"start_date": ""}, "start_date is missing"),
    ({"end_date": "2026-01-01"}, "end_date 2026-01-01 is before start_date 2026-02-01"),
    ({"invoice_id": "NOPE"}, "invoice_id 'NOPE' is not a known invoice"),
    ({"invoice_id": "I2"}, "invoice I2 belongs to customer C2, not C1"),
    ({"customer_id": "C7", "invoice_id": ""}, "customer_id 'C7' is not a known customer"),
    ({"hold_id": "H1"}, "duplicate hold_id 'H1'"),
]


@pytest.mark.parametrize("change,reason", HOLD_CASES, ids=[c[1][:40] for c in HOLD_CASES])
def test_hold_rules(source_writer, tmp_path, change, reason):
    good = {"hold_id": "H1", "customer_id": "C1", "invoice_id": "I1", "kind": "dispute", "start_date": "2026-02-01"}
    bad = {**good, "hold_id": "H9", **change}
    _, rejects, _ = run_and_reject(
        source_writer, tmp_path, customers=[GOOD_CUSTOMER, OTHER_CUSTOMER],
        invoices=[GOOD_INVOICE, OTHER_INVOICE], holds=[good, bad],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("holds", 3)]
    assert reason in rejects[0][2], rejects[0][2]


def test_malformed_contacts_are_dropped_not_the_customer(source_writer, tmp_path):
    _, rejects, db = run_and_reject(
        source_writer, tmp_path,
        customers=[{**GOOD_CUSTOMER, "email": "compta(at)alpha.fr", "phone": "06 12 34 56 78"},
                   {**OTHER_CUSTOMER, "email": "ap@beta.example", "phone": "+49 30 123 4567"}],
        invoices=[GOOD_INVOICE],
    )
    assert [(e, n, a) for e, n, _, a in rejects] == [("customers", 2, "field_dropped")]
    assert "email 'compta(at)alpha.fr' is not a valid address" in rejects[0][2]
    assert "phone '06 12 34 56 78' is not an E.164 number" in rejects[0][2]
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("select customer_id, email, phone, country, language, segment, dunning_block from stg_customers order by 1").fetchall()
    assert got == [
        ("C1", None, None, "FR", "fr", "b2b", False),  # defaults: FR, fr, b2b, not blocked
        ("C2", "ap@beta.example", "+49301234567", "DE", "en", "b2b", False),  # spaces removed from the phone
    ]


def test_defaults_for_kind_and_currency(source_writer, tmp_path):
    _, rejects, db = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE])
    assert rejects == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select kind, currency, amount from stg_invoices").fetchall() == [("invoice", "EUR", __import__("decimal").Decimal("100.00"))]


def test_a_malformed_line_is_rejected_with_its_line_number(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\n")
    (src / "invoices.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\n"
        "I1,C1,2026-01-01,2026-01-31,10.00\n"
        "I2,C1,2026-01-01,2026-01-31,10.00,oops\n"
        "I3,C1,2026-01-01,2026-01-31,12.00\n"
    )
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute("select entity, row_number, raw, reason from rejected_rows").fetchall()
    assert len(rejects) == 1
    entity, row, raw, reason = rejects[0]
    assert (entity, row, raw) == ("invoices", 3, "I2,C1,2026-01-01,2026-01-31,10.00,oops")
    assert "more fields than the header" in reason
    assert summary["ingest"]["rows_loaded"]["invoices"] == 2


def test_bom_semicolons_blank_lines_and_header_case_are_accepted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_bytes("\ufeffCustomer_ID;Name\r\nC1;Société Générale d'Études\r\n\r\n".encode())
    (src / "invoices.csv").write_text(
        "invoice_id;customer_id;issue_date;due_date;amount\n\nI1;C1;2026-01-01;2026-01-31;10.50\n"
    )
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    assert summary["ingest"]["rows_loaded"] == {"customers": 1, "invoices": 1, "payments": 0, "holds": 0}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select name from stg_customers").fetchone()[0] == "Société Générale d'Études"


def test_parquet_source(tmp_path, source_writer):
    csv_src = source_writer(customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE, {**GOOD_INVOICE, "invoice_id": "I2", "amount": "0.10"}])
    pq = tmp_path / "pq"
    pq.mkdir()
    with duckdb.connect() as con:
        for e in ("customers", "invoices"):
            con.execute(f"copy (select * from read_csv('{csv_src / (e + '.csv')}', all_varchar=true)) to '{pq / (e + '.parquet')}' (format parquet)")
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=AS_OF, source=str(pq), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select sum(open_amount) from invoice_snapshot").fetchone()[0] == __import__("decimal").Decimal("100.10")



def test_parquet_timestamp_dates_are_their_calendar_dates(tmp_path):
    """pandas writes dates as datetime64 → Parquet timestamps: a naive timestamp in a date column
    is its calendar date (the time dropped, never rounded); one with a time zone is rejected."""
    pq = tmp_path / "pq"
    pq.mkdir()
    with duckdb.connect() as con:
        con.execute(f"copy (select 'C1' as customer_id, 'Alpha' as name) to '{pq / 'customers.parquet'}' (format parquet)")
        con.execute(
            "copy (select * from (values "
            "('I1', 'C1', timestamp '2026-01-01 00:00:00', timestamp_ns '2026-01-31 23:59:59.999999', 100.00::decimal(18,2)), "
            "('I2', 'C1', timestamp '2026-02-01 14:30:00', null, 5.00::decimal(18,2))"
            ") t(invoice_id, customer_id, issue_date, due_date, amount)) "
            f"to '{pq / 'invoices.parquet'}' (format parquet)"
        )
        con.execute("set TimeZone = 'UTC'")
        con.execute(
            "copy (select 'P1' as payment_id, 'C1' as customer_id, 'I1' as invoice_id, "
            "timestamptz '2026-02-01 12:00:00+00' as paid_date, 40.00::decimal(18,2) as amount) "
            f"to '{pq / 'payments.parquet'}' (format parquet)"
        )
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(pq), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select invoice_id, issue_date, due_date from stg_invoices").fetchall() == [
            ("I1", date(2026, 1, 1), date(2026, 1, 31))
        ]
        reasons = dict(con.execute("select entity, reason from rejected_rows where as_of = ?", [AS_OF]).fetchall())
    assert reasons["invoices"] == "due_date is missing (required)"  # I2: its issue_date was accepted
    assert "paid_date '2026-02-01 12:00:00+00' is not a date written YYYY-MM-DD" in reasons["payments"]
    assert summary["ingest"]["rows_loaded"]["invoices"] == 1

# -- whole files that cannot be read -------------------------------------------------------

def _unreadable(tmp_path: Path, name: str, content: bytes) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\n")
    (src / "invoices.csv").write_text("invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n")
    (src / name).write_bytes(content)
    return src


FILE_CASES = [
    ("invoices.csv", b"invoice_id,customer_id,issue_date,amount\nI1,C1,2026-01-01,10.00\n", "invoices.csv: required column due_date missing"),
    ("invoices.csv", b"", "invoices.csv: the file is empty"),
    ("invoices.csv", b"\x00\x01\x02PK\x03\x04binary", "invoices.csv: this is not a CSV text file"),
    ("customers.csv", "customer_id,name\nC1,Société\n".encode("latin-1"), "customers.csv: the file is not UTF-8 encoded"),
    ("customers.csv", "customer_id,name\nC1,A\n".encode("utf-16"), "customers.csv: the file is UTF-16 encoded"),
    ("invoices.parquet", b"not parquet", "has both invoices.csv and invoices.parquet"),
]


@pytest.mark.parametrize("name,content,message", FILE_CASES, ids=[c[2][:35] for c in FILE_CASES])
def test_unreadable_file_stops_the_run_with_a_clear_message(tmp_path, name, content, message):
    src = _unreadable(tmp_path, name, content)
    with pytest.raises(SourceError) as err:
        nightly_run(as_of=AS_OF, source=str(src), db=str(tmp_path / "r.duckdb"))
    assert message in str(err.value)


def test_missing_required_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\n")
    with pytest.raises(SourceError, match="has no invoices.csv or invoices.parquet"):
        nightly_run(as_of=AS_OF, source=str(src), db=str(tmp_path / "r.duckdb"))


def test_cli_prints_one_clear_line_and_no_traceback(tmp_path):
    src = _unreadable(tmp_path, "customers.csv", "customer_id,name\nC1,Société\n".encode("latin-1"))
    proc = subprocess.run(
        [sys.executable, "-m", "relance.cli", "run", "--as-of", "2026-03-31", "--source", str(src), "--db", str(tmp_path / "r.duckdb")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("relance: error:")
    assert "customers.csv: the file is not UTF-8 encoded" in proc.stderr


def test_cli_rejects_a_bad_date(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "relance.cli", "run", "--as-of", "2026-02-30", "--source", str(tmp_path), "--db", str(tmp_path / "r.duckdb")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "--as-of '2026-02-30' is not a date written YYYY-MM-DD" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_malformed_line_is_reported_once_under_its_own_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\nC2,Beta,extra\n")
    (src / "invoices.csv").write_text("invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n")
    (src / "payments.csv").write_text("payment_id,customer_id,paid_date,amount\nP1,C1,2026-02-01,1.00\n")
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute("select entity, row_number from rejected_rows").fetchall()
    assert rejects == [("customers", 3)]
    assert summary["ingest"]["rows_rejected"] == 1


# -- file names that differ only by case ----------------------------------------------------

@pytest.mark.parametrize("names,message", [
    (("INVOICES.csv", "invoices.csv"), "has both INVOICES.csv and invoices.csv: keep only one"),
    (("Invoices.parquet", "invoices.csv"), "has both invoices.csv and Invoices.parquet: keep only one"),
    (("Customers.CSV", "customers.csv"), "has both Customers.CSV and customers.csv: keep only one"),
], ids=["csv-csv", "csv-parquet", "upper-suffix"])
def test_two_files_differing_only_by_case_stop_the_run(tmp_path, names, message):
    src = _unreadable(tmp_path, "holds.csv", b"hold_id,customer_id,kind,start_date\n")
    for name in names:
        if name.lower().startswith("invoices"):
            (src / "invoices.csv").unlink(missing_ok=True)
    invoice_csv = b"invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n"
    for name in names:
        if name.lower().endswith(".parquet"):
            duckdb.sql("select 'I1' as invoice_id, 'C1' as customer_id, '2026-01-01' as issue_date, "
                       "'2026-01-31' as due_date, '10.00' as amount").write_parquet(str(src / name))
        elif name.lower().startswith("customers"):
            (src / name).write_bytes(b"customer_id,name\nC1,Alpha\n")
        else:
            (src / name).write_bytes(invoice_csv)
    assert sorted(p.name for p in src.iterdir()) == sorted({*names, "customers.csv", "holds.csv", "invoices.csv"})
    with pytest.raises(SourceError) as err:
        nightly_run(as_of=AS_OF, source=str(src), db=str(tmp_path / "r.duckdb"))
    assert str(err.value) == f"source folder {src} {message}"


def test_a_file_named_in_another_case_is_found(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Customers.CSV").write_text("customer_id,name\nC1,Alpha\n")
    (src / "INVOICES.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\nI2,C9,2026-01-01,2026-01-31,5.00\n"
    )
    duckdb.sql("select 'P1' as payment_id, 'C1' as customer_id, 'I1' as invoice_id, "
               "'2026-02-01' as paid_date, '4.00' as amount").write_parquet(str(src / "Payments.Parquet"))
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    assert summary["ingest"]["rows_loaded"] == {"customers": 1, "invoices": 1, "payments": 1, "holds": 0}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select open_amount from invoice_snapshot where invoice_id = 'I1'").fetchone()[0] == __import__("decimal").Decimal("6.00")
        assert con.execute("select source from rejected_rows").fetchall() == [(str(src / "INVOICES.csv"),)]


def test_a_rejected_row_keeps_the_row_as_read_and_an_older_warehouse_is_migrated(source_writer, tmp_path):
    """rejected_rows.raw is the row as read from the file (untrimmed), for the rejected rows only;
    a warehouse written by the earlier layout (persistent raw_* and stg_*_checked tables, stg_*
    views) ingests again, its stale derived tables gone and stg_* now plain tables."""
    db = tmp_path / "r.duckdb"
    with duckdb.connect(str(db)) as con:  # the earlier layout, with stale contents
        con.execute("create table raw_invoices (invoice_id varchar, _raw varchar)")
        con.execute("insert into raw_invoices values ('STALE', '{}')")
        con.execute("create table stg_invoices_checked as select 'STALE' as invoice_id, null as reject_reason")
        con.execute("create view stg_invoices as select * from stg_invoices_checked where reject_reason is null")
    bad = {**OTHER_INVOICE, "amount": " 12,50 "}
    src = source_writer(customers=[GOOD_CUSTOMER, {**GOOD_CUSTOMER, "customer_id": "C2"}], invoices=[GOOD_INVOICE, bad])
    nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select entity, row_number, raw, reason from rejected_rows").fetchall()
        objects = dict(con.execute(
            "select table_name, table_type from information_schema.tables where table_name like '%invoices%'"
        ).fetchall())
        valid = con.execute("select invoice_id from stg_invoices").fetchall()
    assert len(rows) == 1
    entity, row, raw, reason = rows[0]
    assert (entity, row) == ("invoices", 3) and "uses a comma" in reason
    assert __import__("json").loads(raw)["amount"] == " 12,50 "  # as read, spaces kept
    assert objects.get("stg_invoices") == "BASE TABLE"
    assert "raw_invoices" not in objects and "stg_invoices_checked" not in objects  # the stale ones are gone
    assert valid == [("I1",)]


def test_a_hold_ending_at_infinity_is_open_ended(source_writer, tmp_path):
    """PostgreSQL writes an open end date as 'infinity' (date and timestamp columns alike): the
    hold loads with no end and holds its invoice, instead of being rejected — which would let a
    disputed invoice be dunned."""
    hold = {"hold_id": "H1", "customer_id": "C1", "invoice_id": "I1", "kind": "dispute",
            "start_date": "2026-02-01", "end_date": "infinity"}
    _, rejects, db = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE],
                                    holds=[hold])
    assert rejects == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select hold_id, end_date from stg_holds").fetchall() == [("H1", None)]
        assert con.execute("select held, hold_kind from invoice_snapshot where invoice_id = 'I1'").fetchall() == [(True, "dispute")]
