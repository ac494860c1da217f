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
from relance.core.errors import SourceError

AS_OF = date(2026, 3, 31)
GOOD_CUSTOMER = {"customer_id": "C1", "name": "Alpha SARL"}
OTHER_CUSTOMER = {"customer_id": "C2", "name": "Beta GmbH", "country": "DE", "language": "en"}
GOOD_INVOICE = {
    "invoice_id": "I1",
    "customer_id": "C1",
    "issue_date": "2026-01-01",
    "due_date": "2026-01-31",
    "amount": "100.00",
}
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
    ({"customer_id": "C9", "name": "X", "segment": "b2g"}, "segment 'b2g' is not b2b, b2c or public"),
    ({"customer_id": "C9", "name": "X", "dunning_block": "maybe"}, "dunning_block 'maybe' is not true or false"),
    (
        {"customer_id": "C1", "name": "Twin"},
        "duplicate customer_id 'C1' (row 2, the first valid row with this id, is kept)",
    ),
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
    ({"invoice_id": "I1"}, "duplicate invoice_id 'I1' (row 2, the first valid row with this id, is kept)"),
    ({"invoice_id": ""}, "invoice_id is missing"),
]


@pytest.mark.parametrize("change,reason", INVOICE_CASES, ids=[c[1][:40] for c in INVOICE_CASES])
def test_invoice_rules(source_writer, tmp_path, change, reason):
    bad = {**GOOD_INVOICE, "invoice_id": "I9", **change}
    summary, rejects, _ = run_and_reject(
        source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE, bad]
    )
    assert [(e, n, a) for e, n, _, a in rejects] == [("invoices", 3, "rejected")]
    assert reason in rejects[0][2], rejects[0][2]
    assert summary["ingest"]["rows_loaded"]["invoices"] == 1


def test_an_invoice_of_a_rejected_customer_is_rejected_too(source_writer, tmp_path):
    _, rejects, _ = run_and_reject(
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER, {"customer_id": "C2", "name": "X", "country": "XX"}],
        invoices=[GOOD_INVOICE, OTHER_INVOICE],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("customers", 3), ("invoices", 3)]
    assert "its row was rejected" in rejects[1][2]


def test_several_problems_are_all_named(source_writer, tmp_path):
    bad = {
        "invoice_id": "I9",
        "customer_id": "C1",
        "issue_date": "2026-13-01",
        "due_date": "",
        "amount": "x",
        "currency": "ZZZ",
    }
    _, rejects, _ = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[bad])
    reason = rejects[0][2]
    for part in (
        "issue_date 2026-13-01 is not a real calendar date",
        "due_date is missing",
        "amount 'x'",
        "currency 'ZZZ'",
    ):
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
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER, OTHER_CUSTOMER],
        invoices=[GOOD_INVOICE, OTHER_INVOICE, GBP_INVOICE, CREDIT_NOTE],
        payments=[good, bad],
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
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER, OTHER_CUSTOMER],
        invoices=[GOOD_INVOICE, OTHER_INVOICE],
        holds=[good, bad],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("holds", 3)]
    assert reason in rejects[0][2], rejects[0][2]


def test_malformed_contacts_are_dropped_not_the_customer(source_writer, tmp_path):
    _, rejects, db = run_and_reject(
        source_writer,
        tmp_path,
        customers=[
            {**GOOD_CUSTOMER, "email": "compta(at)alpha.fr", "phone": "06 12 34 56 78"},
            {**OTHER_CUSTOMER, "email": "ap@beta.example", "phone": "+49 30 123 4567"},
        ],
        invoices=[GOOD_INVOICE],
    )
    assert [(e, n, a) for e, n, _, a in rejects] == [("customers", 2, "field_dropped")]
    assert "email 'compta(at)alpha.fr' is not a valid address" in rejects[0][2]
    assert "phone" not in rejects[0][2]  # a French number in the national format of its country (FR by default)
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute(
            "select customer_id, email, phone, country, language, segment, dunning_block from stg_customers order by 1"
        ).fetchall()
    assert got == [
        ("C1", None, "+33612345678", "FR", "fr", "b2b", False),  # defaults: FR, fr, b2b, not blocked
        ("C2", "ap@beta.example", "+49301234567", "DE", "en", "b2b", False),  # spaces removed from the phone
    ]


def test_defaults_for_kind_and_currency(source_writer, tmp_path):
    _, rejects, db = run_and_reject(source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE])
    assert rejects == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select kind, currency, amount from stg_invoices").fetchall() == [
            ("invoice", "EUR", __import__("decimal").Decimal("100.00"))
        ]


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
    csv_src = source_writer(
        customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE, {**GOOD_INVOICE, "invoice_id": "I2", "amount": "0.10"}]
    )
    pq = tmp_path / "pq"
    pq.mkdir()
    with duckdb.connect() as con:
        for e in ("customers", "invoices"):
            con.execute(
                f"copy (select * from read_csv('{csv_src / (e + '.csv')}', all_varchar=true)) to '{pq / (e + '.parquet')}' (format parquet)"
            )
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=AS_OF, source=str(pq), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select sum(open_amount) from invoice_snapshot").fetchone()[0] == __import__(
            "decimal"
        ).Decimal("100.10")


def test_parquet_timestamp_dates_are_their_calendar_dates(tmp_path):
    """pandas writes dates as datetime64 → Parquet timestamps: a naive timestamp in a date column
    is its calendar date (the time dropped, never rounded); one with a time zone is rejected."""
    pq = tmp_path / "pq"
    pq.mkdir()
    with duckdb.connect() as con:
        con.execute(
            f"copy (select 'C1' as customer_id, 'Alpha' as name) to '{pq / 'customers.parquet'}' (format parquet)"
        )
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
    (src / "invoices.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n"
    )
    (src / name).write_bytes(content)
    return src


FILE_CASES = [
    (
        "invoices.csv",
        b"invoice_id,customer_id,issue_date,amount\nI1,C1,2026-01-01,10.00\n",
        "invoices.csv: required column due_date missing",
    ),
    ("invoices.csv", b"", "invoices.csv: the file is empty"),
    ("invoices.csv", b"\x00\x01\x02PK\x03\x04binary", "invoices.csv: this is not a CSV text file"),
    (
        "customers.csv",
        "customer_id,name\nC1,Société\n".encode("latin-1"),
        "customers.csv: the file is not UTF-8 encoded",
    ),
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
        [
            sys.executable,
            "-m",
            "relance.cli",
            "run",
            "--as-of",
            "2026-03-31",
            "--source",
            str(src),
            "--db",
            str(tmp_path / "r.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("relance: error:")
    assert "customers.csv: the file is not UTF-8 encoded" in proc.stderr


def test_cli_rejects_a_bad_date(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "relance.cli",
            "run",
            "--as-of",
            "2026-02-30",
            "--source",
            str(tmp_path),
            "--db",
            str(tmp_path / "r.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--as-of '2026-02-30' is not a date written YYYY-MM-DD" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_malformed_line_is_reported_once_under_its_own_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\nC2,Beta,extra\n")
    (src / "invoices.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n"
    )
    (src / "payments.csv").write_text("payment_id,customer_id,paid_date,amount\nP1,C1,2026-02-01,1.00\n")
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute("select entity, row_number from rejected_rows").fetchall()
    assert rejects == [("customers", 3)]
    assert summary["ingest"]["rows_rejected"] == 1


# -- file names that differ only by case ----------------------------------------------------


@pytest.mark.parametrize(
    "names,message",
    [
        (("INVOICES.csv", "invoices.csv"), "has both INVOICES.csv and invoices.csv: keep only one"),
        (("Invoices.parquet", "invoices.csv"), "has both invoices.csv and Invoices.parquet: keep only one"),
        (("Customers.CSV", "customers.csv"), "has both Customers.CSV and customers.csv: keep only one"),
    ],
    ids=["csv-csv", "csv-parquet", "upper-suffix"],
)
def test_two_files_differing_only_by_case_stop_the_run(tmp_path, names, message):
    src = _unreadable(tmp_path, "holds.csv", b"hold_id,customer_id,kind,start_date\n")
    for name in names:
        if name.lower().startswith("invoices"):
            (src / "invoices.csv").unlink(missing_ok=True)
    invoice_csv = b"invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-01-31,10.00\n"
    for name in names:
        if name.lower().endswith(".parquet"):
            duckdb.sql(
                "select 'I1' as invoice_id, 'C1' as customer_id, '2026-01-01' as issue_date, "
                "'2026-01-31' as due_date, '10.00' as amount"
            ).write_parquet(str(src / name))
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
    duckdb.sql(
        "select 'P1' as payment_id, 'C1' as customer_id, 'I1' as invoice_id, "
        "'2026-02-01' as paid_date, '4.00' as amount"
    ).write_parquet(str(src / "Payments.Parquet"))
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=str(src), db=str(db))
    assert summary["ingest"]["rows_loaded"] == {"customers": 1, "invoices": 1, "payments": 1, "holds": 0}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select open_amount from invoice_snapshot where invoice_id = 'I1'").fetchone()[
            0
        ] == __import__("decimal").Decimal("6.00")
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
        objects = dict(
            con.execute(
                "select table_name, table_type from information_schema.tables where table_name like '%invoices%'"
            ).fetchall()
        )
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
    hold = {
        "hold_id": "H1",
        "customer_id": "C1",
        "invoice_id": "I1",
        "kind": "dispute",
        "start_date": "2026-02-01",
        "end_date": "infinity",
    }
    _, rejects, db = run_and_reject(
        source_writer, tmp_path, customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE], holds=[hold]
    )
    assert rejects == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select hold_id, end_date from stg_holds").fetchall() == [("H1", None)]
        assert con.execute("select held, hold_kind from invoice_snapshot where invoice_id = 'I1'").fetchall() == [
            (True, "dispute")
        ]


# -- issue 12 §4: no receivable vanishes, no nonsense is claimed ------------------------------


def ingest_and_reject(source_writer, tmp_path, policy=None, **entities):
    """The ingest step alone (the rules are all in staging): (summary, rejected rows, db)."""
    from tasks.ingest import ingest

    src = source_writer(**entities)
    db = tmp_path / "r.duckdb"
    summary = ingest(str(src), str(db), AS_OF, policy=policy)
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute(
            "select entity, row_number, reason, action from rejected_rows where as_of = ? order by entity, row_number",
            [AS_OF],
        ).fetchall()
    return summary, rejects, db


def test_a_language_without_templates_falls_back_and_the_customer_is_aged(source_writer, tmp_path):
    """de and es customers were rejected with their invoices (their receivable left the aged
    balance). Contract §1: they load in the policy's default language (fr), listed as field_dropped;
    a regional tag (en-GB) is its language; an empty language is the default."""
    _, rejects, db = run_and_reject(
        source_writer,
        tmp_path,
        customers=[
            {**GOOD_CUSTOMER, "language": "de"},
            {**OTHER_CUSTOMER, "language": "es"},
            {"customer_id": "C3", "name": "Gamma Ltd", "language": "en-GB"},
            {"customer_id": "C4", "name": "Delta", "language": ""},
        ],
        invoices=[GOOD_INVOICE, OTHER_INVOICE],
    )
    assert [(e, n, a) for e, n, _, a in rejects] == [
        ("customers", 2, "field_dropped"),
        ("customers", 3, "field_dropped"),
    ]
    assert rejects[0][2] == (
        "language 'de' has no templates (fr, en): the customer is loaded with the policy's "
        "default language fr; set fr or en to choose"
    )
    assert "language 'es' has no templates" in rejects[1][2]
    with duckdb.connect(str(db), read_only=True) as con:
        languages = con.execute("select customer_id, language from stg_customers order by 1").fetchall()
        aged = con.execute("select customer_id, bucket, amount from aged_balance order by 1").fetchall()
    assert languages == [("C1", "fr"), ("C2", "fr"), ("C3", "en"), ("C4", "fr")]
    # I1 and I2: 100.00 each, due 2026-01-31, 59 days late on 2026-03-31
    assert aged == [
        ("C1", "31-60", __import__("decimal").Decimal("100.00")),
        ("C2", "31-60", __import__("decimal").Decimal("100.00")),
    ]


def test_the_default_language_is_the_policys(source_writer, tmp_path):
    policy = tmp_path / "policy.yaml"
    text = (Path(__file__).parents[1] / "policies" / "default.yaml").read_text(encoding="utf-8")
    assert "default_language: fr\n" in text
    policy.write_text(text.replace("default_language: fr\n", "default_language: en\n"), encoding="utf-8")
    _, rejects, db = ingest_and_reject(
        source_writer,
        tmp_path,
        policy=str(policy),
        customers=[
            {**GOOD_CUSTOMER, "language": "es"},
            {**OTHER_CUSTOMER, "language": "fr"},
            {"customer_id": "C3", "name": "Gamma"},
        ],
        invoices=[GOOD_INVOICE],
    )
    assert "loaded with the policy's default language en" in rejects[0][2]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select customer_id, language from stg_customers order by 1").fetchall() == [
            ("C1", "en"),
            ("C2", "fr"),
            ("C3", "en"),
        ]


def test_a_date_far_from_the_run_date_rejects_its_row_only(source_writer, tmp_path):
    """A year typed 0206 stopped the night ("no rate for 206-H1"). Contract §1: a date before 1900
    or more than 50 years from as_of (2026-03-31: 1976-03-31 .. 2076-03-31 pass) rejects its row,
    for every date column; the others load."""
    inv = lambda i, **kw: {**GOOD_INVOICE, "invoice_id": i, **kw}  # noqa: E731
    pay = lambda i, d: {"payment_id": i, "customer_id": "C1", "paid_date": d, "amount": "1.00"}  # noqa: E731
    hold = lambda i, **kw: {"hold_id": i, "customer_id": "C1", "kind": "promise", "start_date": "2026-03-01", **kw}  # noqa: E731
    summary, rejects, db = ingest_and_reject(
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER],
        invoices=[
            inv("I1"),
            inv("I2", issue_date="0206-01-01"),
            inv("I3", due_date="2076-04-01"),
            inv("I4", issue_date="1976-03-31"),
            inv("I5", issue_date="1976-03-30"),
        ],
        payments=[pay("P1", "1899-12-31"), pay("P2", "2026-02-01")],
        holds=[
            hold("H1", start_date="1900-01-01"),
            hold("H2", end_date="2076-03-31"),
            hold("H3", end_date="9999-12-31"),
        ],
    )
    reasons = {(e, n): r for e, n, r, a in rejects if a == "rejected"}
    assert reasons == {
        ("invoices", 3): "issue_date 0206-01-01 is before 1900: check the year",
        ("invoices", 4): "due_date 2076-04-01 is more than 50 years after the run date 2026-03-31: check the year",
        ("invoices", 6): "issue_date 1976-03-30 is more than 50 years before the run date 2026-03-31: check the year",
        ("payments", 2): "paid_date 1899-12-31 is before 1900: check the year",
        ("holds", 2): "start_date 1900-01-01 is more than 50 years before the run date 2026-03-31: check the year",
        ("holds", 4): "end_date 9999-12-31 is more than 50 years after the run date 2026-03-31: check the year",
    }
    assert summary["rows_loaded"] == {"customers": 1, "invoices": 2, "payments": 1, "holds": 1}


def test_the_night_goes_on_after_a_typo_year(source_writer, tmp_path):
    summary, rejects, db = run_and_reject(
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER, OTHER_CUSTOMER],
        invoices=[{**GOOD_INVOICE, "issue_date": "0206-01-01", "due_date": "0206-01-31"}, OTHER_INVOICE],
    )
    assert [(e, n) for e, n, _, _ in rejects] == [("invoices", 2)]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select customer_id, amount from aged_balance").fetchall() == [
            ("C2", __import__("decimal").Decimal("100.00"))
        ]
        assert con.execute("select customer_id from dunning_actions").fetchall() == [("C2",)]


def test_sums_of_the_largest_amounts_do_not_overflow(source_writer, tmp_path):
    """Two invoices of 9,000,000,000,000,000.00 (the most a row holds is 16 digits) for one customer
    stopped the run with a DECIMAL(18,2) overflow on their sum; sums are DECIMAL(38,2): the run, the
    metrics and the report complete, for that customer and the others."""
    big = "9000000000000000.00"
    src = source_writer(
        customers=[{**GOOD_CUSTOMER, "email": "a@client.example"}, {**OTHER_CUSTOMER, "email": "b@client.example"}],
        invoices=[{**GOOD_INVOICE, "amount": big}, {**GOOD_INVOICE, "invoice_id": "I3", "amount": big}, OTHER_INVOICE],
        payments=[
            {"payment_id": "P1", "customer_id": "C2", "paid_date": "2026-02-01", "amount": big},
            {"payment_id": "P2", "customer_id": "C2", "paid_date": "2026-02-02", "amount": big},
        ],
    )
    db = tmp_path / "r.duckdb"
    summary = nightly_run(
        as_of=AS_OF, source=str(src), db=str(db), outbox=str(tmp_path / "out"), report_dir=str(tmp_path / "rep")
    )
    D = __import__("decimal").Decimal
    with duckdb.connect(str(db), read_only=True) as con:
        aged = con.execute("select customer_id, bucket, amount from aged_balance order by 1, 2").fetchall()
        unit = con.execute("select customer_id, dunnable_amount from unit_stage order by 1").fetchall()
        due = con.execute("select customer_id, amount_due from dunning_actions order by 1").fetchall()
        open_ar = con.execute(
            "select value from recovery_metrics where metric = 'open_ar' and dimension = 'all'"
        ).fetchall()
    # C1: 2 × 9e15 = 18e15, 59 days late; C2: 100.00 settled by 18e15 of payments on account
    assert aged == [("C1", "31-60", D("18000000000000000.00")), ("C2", "unapplied_credit", D("-17999999999999900.00"))]
    assert unit == [("C1", D("18000000000000000.00"))]  # C2 has nothing open: no unit
    assert due == [("C1", D("18000000000000000.00"))]
    assert open_ar == [(D("18000000000000000.0000"),)]
    assert Path(summary["report"]["html"]).exists()


def test_a_warehouse_with_narrow_sums_is_widened(source_writer, tmp_path):
    db = tmp_path / "r.duckdb"
    with duckdb.connect(str(db)) as con:  # the columns as an earlier version created them
        con.execute(
            "create table aged_balance (as_of date not null, customer_id varchar not null, currency varchar not null,"
            " bucket varchar not null, amount decimal(18,2) not null, invoice_count integer not null)"
        )
    from tasks.ingest import ingest

    ingest(str(source_writer(customers=[GOOD_CUSTOMER], invoices=[GOOD_INVOICE])), str(db), AS_OF)
    with duckdb.connect(str(db), read_only=True) as con:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns where table_name in "
                "('aged_balance', 'unit_stage', 'dunning_actions') and column_name in "
                "('amount', 'dunnable_amount', 'amount_due', 'charges_total')"
            ).fetchall()
        )
    assert types == dict.fromkeys(("amount", "dunnable_amount", "amount_due", "charges_total"), "DECIMAL(38,2)")


DUPLICATE_CASES = {
    # entity: (rows, the id, a change that makes the first row invalid, its own reason)
    "customers": (
        {"customer_id": "C1", "name": "Alpha SARL"},
        "customer_id",
        {"country": "XX"},
        "country 'XX' is not an ISO 3166 two-letter code",
    ),
    "invoices": (GOOD_INVOICE, "invoice_id", {"amount": "abc"}, "amount 'abc' is not a number"),
    "payments": (
        {"payment_id": "P1", "customer_id": "C1", "invoice_id": "I1", "paid_date": "2026-02-01", "amount": "10.00"},
        "payment_id",
        {"invoice_id": "NOPE"},
        "invoice_id 'NOPE' is not a known invoice",
    ),
    "holds": (
        {"hold_id": "H1", "customer_id": "C1", "invoice_id": "I1", "kind": "dispute", "start_date": "2026-02-01"},
        "hold_id",
        {"kind": "vacation"},
        "kind 'vacation' is not one of",
    ),
}


@pytest.mark.parametrize("entity", list(DUPLICATE_CASES))
def test_a_duplicated_id_keeps_its_first_valid_row(source_writer, tmp_path, entity):
    """The first row of a repeated id is invalid (row 2), the second valid (row 3), a third valid
    too (row 4): row 3 is kept, rows 2 and 4 are rejected naming row 3 — and, for a customer, its
    invoices load (no receivable vanishes because of a bad duplicate)."""
    good, key, breaks, own = DUPLICATE_CASES[entity]
    second = {**good, "name": "Alpha (kept)"} if entity == "customers" else good
    rows = [{**good, **breaks}, second, good]
    base = {"customers": [GOOD_CUSTOMER], "invoices": [GOOD_INVOICE]}
    base[entity] = rows
    summary, rejects, db = ingest_and_reject(source_writer, tmp_path, **base)
    assert [(e, n, a) for e, n, _, a in rejects] == [(entity, 2, "rejected"), (entity, 4, "rejected")]
    dup = f"duplicate {key} '{good[key]}' (row 3, the first valid row with this id, is kept)"
    assert own in rejects[0][2] and dup in rejects[0][2]
    assert rejects[1][2] == dup
    assert summary["rows_loaded"][entity] == 1
    assert summary["rows_loaded"]["invoices"] == 1  # in cascade: I1's customer C1 is loaded
    if entity == "customers":
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("select name from stg_customers").fetchall() == [("Alpha (kept)",)]


def test_a_duplicated_id_without_a_valid_row_is_rejected_for_its_own_problems(source_writer, tmp_path):
    _, rejects, _ = ingest_and_reject(
        source_writer,
        tmp_path,
        customers=[GOOD_CUSTOMER],
        invoices=[{**GOOD_INVOICE, "amount": "abc"}, {**GOOD_INVOICE, "amount": "-1.00"}],
    )
    assert [(n, r) for _, n, r, _ in rejects] == [
        (2, "amount 'abc' is not a number written like 1234.56"),
        (3, "amount -1.00 is negative: amounts must be greater than 0"),
    ]


def test_row_numbers_are_the_rows_a_spreadsheet_shows(tmp_path):
    """After a line with an extra field, I3 (line 4) was reported at row 3. The row number is the
    row a spreadsheet shows: header 1, blank lines counted, a quoted value over two lines one row."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text('customer_id,name,street\nC1,Alpha,"1 rue A\nBât. B"\n\nC2,,x\n')
    (src / "invoices.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\n"  # 1
        "I1,C1,2026-01-01,2026-01-31,10.00\n"  # 2
        "I2,C1,2026-01-01,2026-01-31,10.00,oops\n"  # 3: an extra field
        "I3,C1,2026-01-01,2026-01-31,abc\n"  # 4
        "\n"  # 5
        "I4,C1,2026-01-01\n"  # 6: fields missing
        "I5,C1,2026-01-01,2026-01-31,-2\n"  # 7
    )
    from tasks.ingest import ingest

    db = tmp_path / "r.duckdb"
    ingest(str(src), str(db), AS_OF)
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute("select entity, row_number, raw, reason from rejected_rows order by 1, 2").fetchall()
        street = con.execute("select street from stg_customers").fetchall()
    assert [(e, n) for e, n, _, _ in rejects] == [
        ("customers", 4),
        ("invoices", 3),
        ("invoices", 4),
        ("invoices", 6),
        ("invoices", 7),
    ]
    assert "name is missing" in rejects[0][3] and __import__("json").loads(rejects[0][2])["customer_id"] == "C2"
    assert rejects[1][2] == "I2,C1,2026-01-01,2026-01-31,10.00,oops" and "more fields than the header" in rejects[1][3]
    assert "amount 'abc'" in rejects[2][3] and __import__("json").loads(rejects[2][2])["invoice_id"] == "I3"
    assert rejects[3][2] == "I4,C1,2026-01-01" and "fewer fields than the header" in rejects[3][3]
    assert "negative" in rejects[4][3]
    assert street == [("1 rue A\nBât. B",)]


@pytest.mark.parametrize(
    "header,message",
    [
        ("invoice_id,customer_id,issue_date,due_date,amount,amount", "the header names column 'amount' twice"),
        (
            "invoice_id,customer_id,issue_date,due_date,amount,Amount ",
            "the header names column 'amount' twice (as 'amount' and 'Amount ')",
        ),
    ],
    ids=["same", "case"],
)
def test_a_column_named_twice_stops_the_file(tmp_path, header, message):
    src = _unreadable(tmp_path, "invoices.csv", (header + "\nI1,C1,2026-01-01,2026-01-31,10.00,20.00\n").encode())
    with pytest.raises(SourceError) as err:
        nightly_run(as_of=AS_OF, source=str(src), db=str(tmp_path / "r.duckdb"))
    assert str(err.value).startswith(f"{src / 'invoices.csv'}: {message}")
    assert "\n" not in str(err.value)


def test_a_parquet_column_named_twice_stops_the_file(tmp_path):
    src = _unreadable(tmp_path, "customers.csv", b"customer_id,name\nC1,Alpha\n")
    (src / "invoices.csv").unlink()
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["invoice_id", "customer_id", "issue_date", "due_date", "amount", "AMOUNT"]
    values = ["I1", "C1", "2026-01-01", "2026-01-31", "10.00", "20.00"]
    pq.write_table(pa.table([pa.array([v]) for v in values], names=names), src / "invoices.parquet")
    with pytest.raises(SourceError, match=r"invoices.parquet: the header names column 'amount' twice"):
        nightly_run(as_of=AS_OF, source=str(src), db=str(tmp_path / "r.duckdb"))


PHONE_CASES = [
    # (country, written, stored) — worked from the numbering plans
    ("", "06 12 34 56 78", "+33612345678"),  # national French mobile, FR by default
    ("FR", "06.12.34.56.78", "+33612345678"),
    ("FR", "0033 6 12 34 56 78", "+33612345678"),  # international prefix 00
    ("FR", "05 36 49 12 34", "+33536491234"),  # a landline loads too (calls use it)
    ("BE", "0470 12 34 56", "+32470123456"),  # a Belgian mobile, national format
    ("BE", "02 555 12 34", "+3225551234"),  # Brussels landline
    ("GB", "+33 6 12 34 56 78", "+33612345678"),  # E.164 whatever the country
    ("DE", "+49 30 123 4567", "+49301234567"),
]


def test_phones_are_normalised_to_e164_with_the_customers_country(source_writer, tmp_path):
    customers = [
        {"customer_id": f"C{i}", "name": "X", "country": c, "phone": p} for i, (c, p, _) in enumerate(PHONE_CASES)
    ]
    customers.append({"customer_id": "CX", "name": "Y", "phone": "06 12 34"})
    customers.append({"customer_id": "CY", "name": "Z", "phone": "appeler le standard"})
    _, rejects, db = ingest_and_reject(source_writer, tmp_path, customers=customers, invoices=[])
    assert [(n, a) for _, n, _, a in rejects] == [
        (len(PHONE_CASES) + 2, "field_dropped"),
        (len(PHONE_CASES) + 3, "field_dropped"),
    ]
    assert rejects[0][2] == (
        "phone '06 12 34' is not a phone number in FR (write it in E.164 like +33612345678, or in "
        "the national format of the customer's country like 06 12 34 56 78): the customer is loaded without phone"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        phones = dict(con.execute("select customer_id, phone from stg_customers").fetchall())
    assert phones == {**{f"C{i}": e for i, (_, _, e) in enumerate(PHONE_CASES)}, "CX": None, "CY": None}


def test_an_api_record_naming_a_column_twice_stops_the_entity(tmp_path):
    from tasks.sources import http_api

    pages = iter(
        [
            [
                {
                    "invoice_id": "I1",
                    "customer_id": "C1",
                    "issue_date": "2026-01-01",
                    "due_date": "2026-01-31",
                    "amount": "10.00",
                    "Amount": "20.00",
                }
            ]
        ]
    )
    with pytest.raises(SourceError) as err:
        http_api._write_entity(tmp_path / "invoices.csv", "invoices", pages, "https://erp.example/api/invoices")
    assert str(err.value) == (
        "https://erp.example/api/invoices: record 1 names column 'amount' twice "
        "(as 'amount' and 'Amount'); keep one key of each name"
    )


def test_a_postgresql_table_naming_a_column_twice_stops_the_run(tmp_path):
    import uuid

    import psycopg

    url = "postgresql://postgres@127.0.0.1:5432/test"
    schema = f"relance_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"create schema {schema}")
        try:
            conn.execute(f"create table {schema}.customers (customer_id text, name text)")
            conn.execute(
                f"create table {schema}.invoices (invoice_id text, customer_id text, issue_date date, "
                f'due_date date, amount numeric(18,2), "Amount" numeric(18,2))'
            )
            with pytest.raises(SourceError) as err:
                nightly_run(as_of=AS_OF, source=url, source_schema=schema, db=str(tmp_path / "r.duckdb"))
        finally:
            conn.execute(f"drop schema if exists {schema} cascade")
    assert str(err.value) == (
        f"{url} {schema}.invoices: the header names column 'amount' twice "
        "(as 'amount' and 'Amount'); keep one column of each name"
    )


#: Hand-picked addresses and whether an email may go to them (relance.core.emails: what SendGrid accepts).
EMAIL_CASES = [
    ("jean.dupont@compta.example", True),
    ("jean.dupont+ar@compta.example.co.uk", True),
    ("x_y@xn--bcher-kva.example", True),  # an IDN domain in its ASCII form
    ("AP@Beta.Example", True),
    ("o'brien@pub.example", True),
    ("no-at-sign", False),
    ("compta(at)alpha.fr", False),
    ("a@b", False),  # no top-level domain
    ("a@b.example.", False),  # trailing dot
    ("jean.@x.example", False),  # local part ends with a dot
    (".jean@x.example", False),
    ("jean..dupont@x.example", False),
    ("a@b..example", False),
    ("a@@b.example", False),
    ("a b@c.example", False),  # a space inside
    (" a@b.example", False),  # spaces around
    ("a@b.example ", False),
    ("Jean <a@b.example>", False),  # a display name
    ("a@-b.example", False),
    ("a@b.c0m1", False),  # a top-level domain with digits
    ("josé@x.example", False),  # unicode: written in ASCII or not at all
    ("jean@bücher.example", False),
    ("x" * 65 + "@b.example", False),  # local part over 64
    ("a@" + "b" * 64 + ".example", False),  # a label over 63
    ("a" * 7 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + "." + "e" * 60 + ".fr", True),  # 254 characters
    ("a" * 8 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + "." + "e" * 60 + ".fr", False),  # 255
]


def test_staging_and_dispatch_share_one_email_rule(tmp_path):
    """The address staging loads (email_ok in SQL) is the address dispatch emails (valid_email):
    one function, registered on the connection; the table above is worked by hand."""
    from relance.core.emails import valid_email
    from tasks.ingest import load_macros

    con = duckdb.connect()
    load_macros(con)
    for address, ok in EMAIL_CASES:
        assert valid_email(address) is ok, address
        assert con.execute("select email_ok(?)", [address]).fetchone()[0] is ok, address
    assert con.execute("select email_ok(null)").fetchone()[0] is None
    assert not valid_email(None) and not valid_email("")


def test_staging_drops_the_addresses_dispatch_would_refuse(source_writer, tmp_path):
    cases = [(a, ok) for a, ok in EMAIL_CASES if a == a.strip()]  # (the CSV reader's spaces are its own)
    customers = [{"customer_id": f"C{i}", "name": f"Customer {i}", "email": a} for i, (a, _) in enumerate(cases)]
    _, rejects, db = run_and_reject(
        source_writer, tmp_path, customers=customers, invoices=[{**GOOD_INVOICE, "customer_id": "C0"}]
    )
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = dict(con.execute("select customer_id, email from stg_customers").fetchall())
    assert {f"C{i}": loaded[f"C{i}"] for i in range(len(cases))} == {
        f"C{i}": (a if ok else None) for i, (a, ok) in enumerate(cases)
    }
    dropped = [r for r in rejects if r[3] == "field_dropped"]
    assert len(dropped) == sum(not ok for _, ok in cases)


def test_a_file_without_quotes_lands_by_duckdb_with_the_same_rows_a_spreadsheet_shows(tmp_path):
    """A quote-free file (here: BOM, CRLF, tab-separated, blank and whitespace-only lines) is landed by
    DuckDB line for line (tasks/sources/files.py _land_plain_csv): same row numbers and reasons as
    the csv module path, worked by hand: header row 2 (after a blank line), rows counted with the
    blank ones."""
    from tasks.ingest import ingest
    from tasks.sources.files import _plain_newline

    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nC1,Alpha\n")
    lines = [
        "",  # 1: blank
        "invoice_id\tcustomer_id\tissue_date\tdue_date\tamount",  # 2: the header
        "I1\tC1\t2026-01-01\t2026-01-31\t10.00",  # 3
        "   ",  # 4: whitespace only, a blank row
        "I2\tC1\t2026-01-01\t2026-01-31\t10.00\toops",  # 5: an extra field
        "\t\t\t\t",  # 6: every field empty (a row, not a blank line)
        "I3\tC1\t2026-01-01\t2026-01-31",  # 7: a field missing
        "I4\tC1\t2026-01-01\t2026-01-31\t12.00",  # 8
    ]
    path = src / "invoices.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert _plain_newline(path) == "\\r\\n"
    db = tmp_path / "r.duckdb"
    ingest(str(src), str(db), AS_OF)
    with duckdb.connect(str(db), read_only=True) as con:
        rejects = con.execute("select row_number, raw, reason from rejected_rows order by 1").fetchall()
        loaded = con.execute("select invoice_id, amount from stg_invoices order by 1").fetchall()
    assert [n for n, _, _ in rejects] == [5, 6, 7]
    assert rejects[0][1] == lines[4] and "more fields than the header (6 fields, the header has 5)" in rejects[0][2]
    assert rejects[1][2].startswith("invoice_id is missing (required); customer_id is missing (required)")
    assert rejects[2][1] == lines[6] and "fewer fields than the header (4 fields, the header has 5)" in rejects[2][2]
    assert [i for i, _ in loaded] == ["I1", "I4"]


@pytest.mark.parametrize(
    "content,newline",
    [
        (b"a,b\n1,2\n", "\\n"),
        (b"a,b\r\n1,2\r\n", "\\r\\n"),
        (b"a,b\r\n1,2", "\\r\\n"),
        (b'a,b\n"1",2\n', None),  # a quote: a value may span lines
        (b"a,b\r\n1,2\n", None),  # mixed line endings
        (b"a,b\r1,2\r", None),  # bare CR (old Mac): the csv module ends rows there
        (b"a,b\n\xe9,2\n", None),  # not UTF-8: the csv module path names the bad line
    ],
)
def test_which_files_duckdb_lands_line_for_line(tmp_path, content, newline):
    from tasks.sources.files import _plain_newline

    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert _plain_newline(path) == newline


def test_duckdb_landing_equals_the_csv_module_on_random_quote_free_files(tmp_path):
    """Seeded random quote-free files (delimiters, line endings, blank and whitespace lines, short
    and long lines, empty fields): both landings give the same _land rows, row numbers and
    structural rejects."""
    import random

    from tasks.sources import files as F

    def land(path, fast):
        con = duckdb.connect()
        con.execute(F.STRUCTURAL_REJECTS_DDL)
        if fast:
            F._land_plain_csv(con, path, "L", "invoices", False, F._plain_newline(path))
        else:
            with path.open(encoding="utf-8-sig", newline="") as f:
                F._land_csv_text(con, f, "L", "invoices", False)
        return [
            con.execute(q).fetchall()
            for q in (
                "select * from _land order by rowid",
                "select * from _land_numbers order by i",
                "select * from raw_structural_rejects order by row_number",
            )
        ]

    rnd = random.Random(20261206)
    header = ["invoice_id", "customer_id", "issue_date", "due_date", "amount", "currency"]
    for trial in range(60):
        d, nl = rnd.choice([",", ";", "\t", "|"]), rnd.choice(["\n", "\r\n"])
        lines = [rnd.choice(["", "  "]) for _ in range(rnd.randint(0, 2))] + [d.join(header)]
        for i in range(rnd.randint(0, 30)):
            r = rnd.random()
            if r < 0.15:
                lines.append(rnd.choice(["", " ", "\u00a0", "\t \t"]))
            elif r < 0.3:
                lines.append(d.join(f"v{i}" for _ in range(rnd.randint(1, 9))))
            else:
                lines.append(d.join([f"I{i}", f"C{i}", "2026-01-01", rnd.choice(["", " x "]), "1.50", "EUR"]))
        path = tmp_path / f"t{trial}.csv"
        path.write_bytes((nl.join(lines) + nl * rnd.randint(0, 2)).encode())
        assert land(path, True) == land(path, False), path.read_bytes()
