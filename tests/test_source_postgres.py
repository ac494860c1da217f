"""The PostgreSQL source, against the real server on 127.0.0.1:5432 (trust auth, database test).

Each test builds its own schema (a unique name) with ERP-like column types — text, numeric(18,2),
date, boolean — fills it, and drops it afterwards. When the server is unreachable the tests are
skipped, except under CI=true where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from flows.nightly import nightly_run
from relance.core.errors import SourceError, UserError
from tasks.sources import postgres

pytestmark = pytest.mark.postgres

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL_WITH_PASSWORD = "postgresql://postgres:Sup3r-S3cret-pw@127.0.0.1:5432/test"
SECRET = "Sup3r-S3cret-pw"
AS_OF = date(2024, 3, 31)

DDL = {
    "customers": """
        create table {s}.customers (
            customer_id text, name text, email text, phone text, street text, postal_code text,
            city text, country varchar(2), language text, segment text, dunning_block boolean,
            collector text, created_at timestamptz default now()
        )""",
    "invoices": """
        create table {s}.invoices (
            invoice_id text, customer_id text, kind text, issue_date date, due_date date,
            amount numeric(18,2), currency char(3)
        )""",
    "payments": """
        create table {s}.payments (
            payment_id text, customer_id text, invoice_id text, paid_date date,
            amount numeric(18,2), currency char(3)
        )""",
    "holds": """
        create table {s}.holds (
            hold_id text, customer_id text, invoice_id text, kind text, start_date date, end_date date
        )""",
}

CUSTOMERS = [
    # customer_id, name, email, phone, street, postal_code, city, country, language, segment, dunning_block, collector
    (
        "C1",
        "Boulangerie Martin",
        "compta@martin.fr",
        "+33612345678",
        "1 rue de la Paix",
        "75002",
        "Paris",
        "FR",
        "fr",
        "b2b",
        False,
        "alice",
    ),
    ("C2", "Small Change Ltd", None, None, "2 High Street", "SW1A 1AA", "London", "GB", "en", "b2b", False, None),
    ("C3", "Grosse Industrie SA", "ap@grosse.example", None, None, None, None, "FR", None, None, True, None),
]

INVOICES = [
    # invoice_id, customer_id, kind, issue_date, due_date, amount, currency
    ("INV-1", "C1", "invoice", date(2024, 1, 10), date(2024, 2, 9), Decimal("100.00"), "EUR"),
    ("CN-1", "C1", "credit_note", date(2024, 2, 20), date(2024, 2, 20), Decimal("50.00"), "EUR"),
    ("INV-2", "C1", None, date(2024, 3, 1), date(2024, 3, 31), Decimal("80.00"), "EUR"),
    ("INV-3", "C2", "invoice", date(2024, 2, 1), date(2024, 3, 1), Decimal("0.10"), "EUR"),
    ("INV-4", "C2", "invoice", date(2024, 2, 1), date(2024, 3, 1), Decimal("0.20"), "EUR"),
    ("INV-5", "C3", "invoice", date(2023, 9, 1), date(2023, 10, 1), Decimal("9999999999999999.99"), "EUR"),
]

PAYMENTS = [
    # payment_id, customer_id, invoice_id, paid_date, amount, currency
    ("P-1", "C1", "INV-1", date(2024, 2, 15), Decimal("30.00"), "EUR"),
]

HOLDS = [
    # hold_id, customer_id, invoice_id, kind, start_date, end_date
    ("H-1", "C1", "INV-2", "dispute", date(2024, 3, 1), None),
]


def _connect() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        message = f"PostgreSQL on 127.0.0.1:5432 is unreachable: {str(e).strip().splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class ErpSchema:
    """A throwaway schema holding the four source tables."""

    def __init__(self, conn: psycopg.Connection, name: str) -> None:
        self.conn = conn
        self.name = name

    def create(self, *entities: str) -> None:
        for entity in entities or tuple(DDL):
            self.conn.execute(DDL[entity].format(s=self.name))

    def insert(self, entity: str, rows: list[tuple]) -> None:
        if not rows:
            return
        marks = ", ".join(["%s"] * len(rows[0]))
        columns = {
            "customers": "customer_id, name, email, phone, street, postal_code, city, country, language, segment, dunning_block, collector",
            "invoices": "invoice_id, customer_id, kind, issue_date, due_date, amount, currency",
            "payments": "payment_id, customer_id, invoice_id, paid_date, amount, currency",
            "holds": "hold_id, customer_id, invoice_id, kind, start_date, end_date",
        }[entity]
        with self.conn.cursor() as cur:
            cur.executemany(f"insert into {self.name}.{entity} ({columns}) values ({marks})", rows)

    def fill(self, *, holds: bool = True) -> None:
        self.create("customers", "invoices", "payments", *(("holds",) if holds else ()))
        self.insert("customers", CUSTOMERS)
        self.insert("invoices", INVOICES)
        self.insert("payments", PAYMENTS)
        if holds:
            self.insert("holds", HOLDS)


@pytest.fixture
def erp():
    conn = _connect()
    name = f"relance_t_{uuid.uuid4().hex[:10]}"
    conn.execute(f"create schema {name}")
    try:
        yield ErpSchema(conn, name)
    finally:
        conn.execute(f"drop schema if exists {name} cascade")
        conn.close()


def _run(tmp_path: Path, schema: str, source: str = PG_URL) -> tuple[dict, duckdb.DuckDBPyConnection]:
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=source, source_schema=schema, db=str(db))
    return summary, duckdb.connect(str(db), read_only=True)


def _open_amounts(con: duckdb.DuckDBPyConnection) -> dict[str, Decimal]:
    return dict(
        con.execute(
            "select invoice_id, open_amount from invoice_snapshot where as_of = ? order by invoice_id", [AS_OF]
        ).fetchall()
    )


# ----------------------------------------------------------------------------- full runs


def test_full_run_from_postgres_gives_the_hand_computed_open_amounts(erp, tmp_path):
    erp.fill()
    summary, con = _run(tmp_path, erp.name)
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 6, "payments": 1, "holds": 1}
        assert summary["ingest"]["rows_rejected"] == 0
        # INV-1: 100.00 − direct payment 30.00 − credit note 50.00 (oldest first) = 20.00.
        # INV-2 untouched (the pool is spent on INV-1); CN-1 is not an open invoice.
        assert _open_amounts(con) == {
            "INV-1": Decimal("20.00"),
            "INV-2": Decimal("80.00"),
            "INV-3": Decimal("0.10"),
            "INV-4": Decimal("0.20"),
            "INV-5": Decimal("9999999999999999.99"),
        }
        rows = con.execute(
            "select invoice_id, days_past_due, bucket, held, hold_kind from invoice_snapshot where as_of = ? order by invoice_id",
            [AS_OF],
        ).fetchall()
        assert rows == [
            ("INV-1", 51, "31-60", False, None),
            ("INV-2", 0, "not_due", True, "dispute"),  # the PG hold (open-ended date) applies
            ("INV-3", 30, "1-30", False, None),
            ("INV-4", 30, "1-30", False, None),
            ("INV-5", 182, "181+", False, None),
        ]
        aged = con.execute(
            "select customer_id, bucket, amount, invoice_count from aged_balance where as_of = ? order by customer_id, bucket",
            [AS_OF],
        ).fetchall()
        assert aged == [
            ("C1", "31-60", Decimal("20.00"), 1),
            ("C1", "not_due", Decimal("80.00"), 1),
            ("C2", "1-30", Decimal("0.30"), 2),  # 0.10 + 0.20 is exactly 0.30
            ("C3", "181+", Decimal("9999999999999999.99"), 1),  # beyond a float's 15-16 digits
        ]
        assert con.execute("select count(*) from rejected_rows where as_of = ?", [AS_OF]).fetchone()[0] == 0
        # PostgreSQL booleans (t/f) and varchar(2) countries land as the staging expects.
        customers = dict(con.execute("select customer_id, dunning_block from stg_customers").fetchall())
        assert customers == {"C1": False, "C2": False, "C3": True}
        assert con.execute("select country, language from stg_customers where customer_id = 'C2'").fetchone() == (
            "GB",
            "en",
        )
    finally:
        con.close()


def test_numeric_amounts_stay_exact(erp, tmp_path):
    erp.create()
    erp.insert("customers", [("C9", "Exact Co", None, None, None, None, None, "FR", "fr", "b2b", False, None)])
    amounts = ["0.10", "0.20", "0.70", "1234567890123.45", "0.01", "33.33"]
    erp.insert(
        "invoices",
        [
            (f"X-{i}", "C9", "invoice", date(2024, 1, 1), date(2024, 1, 31), Decimal(a), "EUR")
            for i, a in enumerate(amounts)
        ],
    )
    # three payments of 33.33 against a 100.00 invoice leave exactly 0.01
    erp.insert("invoices", [("X-100", "C9", "invoice", date(2024, 1, 1), date(2024, 1, 31), Decimal("100.00"), "EUR")])
    erp.insert(
        "payments",
        [(f"PX-{i}", "C9", "X-100", date(2024, 2, 1), Decimal("33.33"), "EUR") for i in range(3)],
    )
    _, con = _run(tmp_path, erp.name)
    try:
        opened = _open_amounts(con)
        assert opened["X-100"] == Decimal("0.01")
        for i, a in enumerate(amounts):
            assert opened[f"X-{i}"] == Decimal(a)
        total = con.execute(
            "select sum(amount) from aged_balance where as_of = ? and customer_id = 'C9'", [AS_OF]
        ).fetchone()[0]
        assert total == sum(Decimal(a) for a in amounts) + Decimal("0.01")
        assert str(total) == "1234567890157.80"
        assert con.execute("select typeof(open_amount) from invoice_snapshot limit 1").fetchone()[0] == "DECIMAL(18,2)"
    finally:
        con.close()


def test_a_bad_row_in_a_table_lands_in_rejected_rows(erp, tmp_path):
    erp.fill()
    erp.insert(
        "invoices",
        [
            ("BAD-NEG", "C1", "invoice", date(2024, 3, 1), date(2024, 3, 31), Decimal("-5.00"), "EUR"),
            ("BAD-DUE", "C1", "invoice", date(2024, 3, 10), date(2024, 3, 1), Decimal("10.00"), "EUR"),
        ],
    )
    erp.insert("payments", [("P-X", "C1", "NO-SUCH-INVOICE", date(2024, 3, 5), Decimal("5.00"), "EUR")])
    summary, con = _run(tmp_path, erp.name)
    try:
        rejected = con.execute(
            "select source, entity, raw, reason, action from rejected_rows where as_of = ? order by entity, row_number",
            [AS_OF],
        ).fetchall()
        by_id = {}
        for source, entity, raw, reason, action in rejected:
            for key in ("BAD-NEG", "BAD-DUE", "P-X"):
                if f'"{key}"' in raw:
                    by_id[key] = (source, entity, reason, action)
        assert set(by_id) == {"BAD-NEG", "BAD-DUE", "P-X"}, rejected
        assert by_id["BAD-NEG"][0] == f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.invoices"
        assert by_id["BAD-NEG"][1:] == (
            "invoices",
            "amount -5.00 is negative: amounts must be greater than 0",
            "rejected",
        )
        assert "due_date 2024-03-01 is before issue_date 2024-03-10" in by_id["BAD-DUE"][2]
        assert by_id["P-X"][0] == f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.payments"
        assert by_id["P-X"][1] == "payments" and "NO-SUCH-INVOICE" in by_id["P-X"][2]
        # the run went on with the valid rows
        assert summary["ingest"]["rows_loaded"]["invoices"] == 6
        assert _open_amounts(con)["INV-1"] == Decimal("20.00")
    finally:
        con.close()


def test_absent_optional_tables_mean_none(erp, tmp_path):
    erp.fill(holds=False)
    summary, con = _run(tmp_path, erp.name)
    try:
        assert summary["ingest"]["rows_read"]["holds"] == 0
        assert summary["ingest"]["rows_loaded"]["holds"] == 0
        assert con.execute("select count(*) from invoice_snapshot where held").fetchone()[0] == 0
        assert _open_amounts(con)["INV-1"] == Decimal("20.00")
    finally:
        con.close()
    erp.conn.execute(f"drop table {erp.name}.payments")
    summary2 = nightly_run(as_of=AS_OF, source=PG_URL, source_schema=erp.name, db=str(tmp_path / "r2.duckdb"))
    assert summary2["ingest"]["rows_loaded"]["payments"] == 0


def test_empty_tables_load_as_none(erp, tmp_path):
    erp.create()
    summary, con = _run(tmp_path, erp.name)
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 0, "invoices": 0, "payments": 0, "holds": 0}
        assert con.execute("select count(*) from invoice_snapshot").fetchone()[0] == 0
    finally:
        con.close()


def test_schema_and_table_names_match_ignoring_case(erp, tmp_path):
    erp.fill()
    erp.conn.execute(f'alter table {erp.name}.invoices rename to "Invoices"')
    folder, labels = postgres.extract(PG_URL, erp.name.upper(), tmp_path)
    assert labels["invoices"] == f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.Invoices"
    text = (folder / "invoices.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "invoice_id,customer_id,kind,issue_date,due_date,amount,currency"
    assert "INV-1,C1,invoice,2024-01-10,2024-02-09,100.00,EUR" in text.splitlines()


# ----------------------------------------------------------------------------- errors


def test_missing_required_table_names_it(erp, tmp_path):
    erp.create("customers", "payments", "holds")
    with pytest.raises(SourceError) as excinfo:
        nightly_run(as_of=AS_OF, source=PG_URL, source_schema=erp.name, db=str(tmp_path / "r.duckdb"))
    message = str(excinfo.value)
    assert f"{erp.name}.invoices" in message and "does not exist" in message
    assert f"{erp.name}.customers" not in message.split("(")[0]


def test_missing_required_column_names_the_table(erp, tmp_path):
    erp.fill()
    erp.conn.execute(f"alter table {erp.name}.invoices drop column due_date")
    with pytest.raises(SourceError) as excinfo:
        postgres.extract(PG_URL, erp.name, tmp_path)
    message = str(excinfo.value)
    assert f"{erp.name}.invoices: required column due_date missing" in message
    assert str(tmp_path) not in message


def test_wrong_schema_is_a_clear_error(erp, tmp_path):
    missing = erp.name + "_nope"
    with pytest.raises(SourceError) as excinfo:
        nightly_run(as_of=AS_OF, source=PG_URL, source_schema=missing, db=str(tmp_path / "r.duckdb"))
    assert str(excinfo.value) == (
        f"PostgreSQL at postgresql://postgres@127.0.0.1:5432/test: schema '{missing}' does not exist "
        "(give the schema that holds customers, invoices, payments and holds with --source-schema)"
    )
    assert isinstance(excinfo.value, UserError)


def test_unknown_database_is_a_clear_error(tmp_path):
    _connect().close()  # skip/fail like the others when the server is down
    with pytest.raises(SourceError, match=r"database 'relance_no_such_db' does not exist"):
        postgres.extract("postgresql://postgres@127.0.0.1:5432/relance_no_such_db", "public", tmp_path)


def test_unreachable_server_is_a_clean_source_error(tmp_path):
    started = time.monotonic()
    with pytest.raises(SourceError) as excinfo:
        nightly_run(
            as_of=AS_OF,
            source=f"postgres://postgres:{SECRET}@127.0.0.1:1/test",
            source_schema="public",
            db=str(tmp_path / "r.duckdb"),
        )
    assert time.monotonic() - started < 15
    error = excinfo.value
    assert str(error).startswith(
        "cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/test: connection refused"
    )
    assert "\n" not in str(error)
    assert SECRET not in str(error)
    # raised `from None`: no chained psycopg traceback for the CLI to show
    assert error.__cause__ is None and error.__suppress_context__


def test_password_never_shows_in_labels_tables_or_errors(erp, tmp_path):
    erp.fill()
    erp.insert("invoices", [("BAD-NEG", "C1", "invoice", date(2024, 3, 1), date(2024, 3, 31), Decimal("-5.00"), "EUR")])
    # trust auth accepts (and ignores) the password; it must still never be written anywhere
    folder, labels = postgres.extract(PG_URL_WITH_PASSWORD, erp.name, tmp_path / "x")
    assert labels["invoices"] == f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.invoices"
    assert all(SECRET not in label for label in labels.values())

    summary, con = _run(tmp_path, erp.name, source=PG_URL_WITH_PASSWORD)
    try:
        assert SECRET not in repr(summary)
        sources = [r[0] for r in con.execute("select distinct source from rejected_rows").fetchall()]
        assert sources == [f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.invoices"]
    finally:
        con.close()

    for url, schema in (
        (PG_URL_WITH_PASSWORD, erp.name + "_nope"),
        (f"postgresql://postgres:{SECRET}@127.0.0.1:5432/relance_no_such_db", "public"),
        (f"postgresql://postgres:{SECRET}@127.0.0.1:1/test", "public"),
        (f"postgresql://postgres@127.0.0.1:5432/test?password={SECRET}", erp.name + "_nope"),
    ):
        with pytest.raises(SourceError) as excinfo:
            postgres.extract(url, schema, tmp_path / "y")
        assert SECRET not in str(excinfo.value), str(excinfo.value)


def test_the_four_tables_are_one_consistent_snapshot(erp, tmp_path):
    """While the extract waits on customers (locked by another session), holds is changed and
    committed; the extract must still read holds as it was when its transaction began."""
    erp.fill()
    locker = psycopg.connect(PG_URL)
    locker.execute(f"lock table {erp.name}.customers in access exclusive mode")
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = postgres.extract(PG_URL, erp.name, tmp_path)
        except BaseException as e:  # pragma: no cover - reported below
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        waiting = None
        while time.monotonic() < deadline and waiting is None:
            waiting = erp.conn.execute(
                "select query from pg_stat_activity where application_name = 'relance' "
                "and wait_event_type = 'Lock' and query like %s",
                (f"%{erp.name}%customers%",),
            ).fetchone()
            if waiting is None:
                time.sleep(0.05)
        assert waiting is not None, "the extract never waited on the locked customers table"
        assert waiting[0].startswith("COPY (SELECT ")
        erp.conn.execute(f"update {erp.name}.holds set kind = 'legal'")  # autocommit: committed now
        erp.conn.execute(f"insert into {erp.name}.holds values ('H-LATE', 'C2', null, 'promise', '2024-03-01', null)")
    finally:
        locker.rollback()
        locker.close()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    folder, _ = result["value"]
    holds = (folder / "holds.csv").read_text(encoding="utf-8").splitlines()
    assert holds == ["hold_id,customer_id,invoice_id,kind,start_date,end_date", "H-1,C1,INV-2,dispute,2024-03-01,"]


# ----------------------------------------------------------------------------- timestamp-typed dates

TIMESTAMP_DDL = {
    "invoices": """
        create table {s}.invoices (
            invoice_id text, customer_id text, kind text, issue_date timestamp, due_date timestamptz,
            amount numeric(18,2), currency char(3)
        )""",
    "payments": """
        create table {s}.payments (
            payment_id text, customer_id text, invoice_id text, "Paid_Date" timestamp(0),
            amount numeric(18,2), currency char(3)
        )""",
    "holds": """
        create table {s}.holds (
            hold_id text, customer_id text, invoice_id text, kind text, start_date timestamptz, end_date timestamp
        )""",
}


def _timestamp_erp(erp: ErpSchema) -> None:
    """The fixture data, with every date column typed timestamp or timestamptz (midnight values)."""
    erp.create("customers")
    for ddl in TIMESTAMP_DDL.values():
        erp.conn.execute(ddl.format(s=erp.name))
    erp.insert("customers", CUSTOMERS)
    erp.insert("invoices", INVOICES)
    with erp.conn.cursor() as cur:
        cur.executemany(
            f'insert into {erp.name}.payments (payment_id, customer_id, invoice_id, "Paid_Date", amount, currency) '
            "values (%s, %s, %s, %s, %s, %s)",
            PAYMENTS,
        )
    erp.insert("holds", HOLDS)


def test_timestamp_date_columns_load_as_their_dates(erp, tmp_path):
    """An ERP that types issue/due/paid/start/end dates as timestamp or timestamptz (values at
    midnight) gives exactly the same run as one that types them date: no row is rejected."""
    _timestamp_erp(erp)
    summary, con = _run(tmp_path, erp.name)
    try:
        assert summary["ingest"]["rows_rejected"] == 0, con.execute("select reason from rejected_rows").fetchall()
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 6, "payments": 1, "holds": 1}
        assert _open_amounts(con) == {
            "INV-1": Decimal("20.00"),
            "INV-2": Decimal("80.00"),
            "INV-3": Decimal("0.10"),
            "INV-4": Decimal("0.20"),
            "INV-5": Decimal("9999999999999999.99"),
        }
        assert con.execute(
            "select invoice_id, days_past_due, held from invoice_snapshot where as_of = ? and invoice_id in ('INV-1', 'INV-2') order by 1",
            [AS_OF],
        ).fetchall() == [("INV-1", 51, False), ("INV-2", 0, True)]
        assert con.execute("select paid_date from stg_payments").fetchall() == [(date(2024, 2, 15),)]
    finally:
        con.close()


def test_a_timestamp_with_a_time_of_day_is_its_calendar_date(erp, tmp_path):
    """A time of day is dropped, never rounded: 23:59:59 is still that day. A timestamptz is
    read in the time zone of the connection (the server's TimeZone, or the URL's
    options=-c TimeZone=…): 2024-02-29 23:30 UTC is 1 March in Paris."""
    from tasks.ingest import ingest

    _timestamp_erp(erp)
    erp.conn.execute(
        f"insert into {erp.name}.invoices values "
        "('INV-T', 'C2', 'invoice', '2024-03-15 23:59:59.999', '2024-02-29 23:30:00+00', 10.00, 'EUR')"
    )
    erp.conn.execute(f"update {erp.name}.invoices set issue_date = '2024-02-01 08:15:00' where invoice_id = 'INV-T'")
    erp.conn.execute(f"update {erp.name}.payments set \"Paid_Date\" = '2024-02-15 18:42:07'")

    def dates(url: str, db: Path) -> tuple:
        result = ingest(url, str(db), AS_OF, erp.name)
        assert result["rows_rejected"] == 0
        with duckdb.connect(str(db), read_only=True) as con:
            return (
                con.execute("select issue_date, due_date from stg_invoices where invoice_id = 'INV-T'").fetchone(),
                con.execute("select paid_date from stg_payments").fetchone()[0],
            )

    assert dates(PG_URL + "?options=-c%20TimeZone%3DEurope/Paris", tmp_path / "paris.duckdb") == (
        (date(2024, 2, 1), date(2024, 3, 1)),
        date(2024, 2, 15),
    )
    assert dates(PG_URL + "?options=-c%20TimeZone%3DUTC", tmp_path / "utc.duckdb") == (
        (date(2024, 2, 1), date(2024, 2, 29)),
        date(2024, 2, 15),
    )


# ----------------------------------------------------------------------------- --source-schema default

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, schema_env: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RELANCE_SOURCE_SCHEMA"}
    if schema_env is not None:
        env["RELANCE_SOURCE_SCHEMA"] = schema_env
    return subprocess.run(
        [sys.executable, "-m", "relance.cli", *args, "--source", PG_URL, "--db", str(tmp_path / "r.duckdb")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )


def test_cli_source_schema_defaults_to_the_setting(erp, tmp_path):
    """RELANCE_SOURCE_SCHEMA is the default of --source-schema for run and backfill; the flag wins."""
    erp.fill()
    proc = _cli("run", "--as-of", "2024-03-31", schema_env=erp.name, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ingest:   3 customers, 6 invoices, 1 payments, 1 holds loaded; 0 rows rejected" in proc.stdout

    nope = erp.name + "_nope"
    proc = _cli("run", "--as-of", "2024-03-31", "--source-schema", nope, schema_env=erp.name, tmp_path=tmp_path)
    assert proc.returncode == 2 and f"schema '{nope}' does not exist" in proc.stderr, proc.stderr

    proc = _cli("backfill", "--start", "2024-03-01", "--end", "2024-03-31", schema_env=nope, tmp_path=tmp_path)
    assert proc.returncode == 2 and f"schema '{nope}' does not exist" in proc.stderr, proc.stderr
    proc = _cli(
        "backfill",
        "--start",
        "2024-03-30",
        "--end",
        "2024-03-31",
        "--source-schema",
        erp.name,
        schema_env=nope,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
