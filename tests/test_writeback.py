"""Write-back of recovery_metrics and aged_balance to the real PostgreSQL on 127.0.0.1:5432.

Each test writes into a schema of its own (relance_test_<random>) and drops it afterwards. When the
server is unreachable the tests are skipped — and fail under CI=true.
"""

from __future__ import annotations

import socket
import threading
import uuid
from datetime import date
from decimal import Decimal as D

import duckdb
import pytest

from tasks import warehouse
from tasks.measure import measure
from tasks.writeback import WriteBackError, write_back
from tests.conftest import IN_CI
from tests.test_metrics import AS_OF, CUSTOMERS, HOLDS, INVOICES, PAYMENTS, prepare

PG = "postgresql://postgres@127.0.0.1:5432/test"
pytestmark = pytest.mark.postgres


def _pg():
    import psycopg

    try:
        return psycopg.connect(PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as e:
        message = f"PostgreSQL on 127.0.0.1:5432 (database test) is unreachable: {e}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_schema():
    con = _pg()
    schema = f"relance_test_{uuid.uuid4().hex[:10]}"
    try:
        yield con, schema
    finally:
        con.execute(f'drop schema if exists "{schema}" cascade')
        con.close()


@pytest.fixture
def db(source_writer, tmp_path):
    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    path = tmp_path / "r.duckdb"
    for day in (date(2026, 6, 29), AS_OF):
        prepare(path, src, day)
        measure(str(path), day)
    return path


def pg_rows(con, schema, table, as_of=None):
    cols = {
        "recovery_metrics": "as_of, currency, metric, dimension, dimension_value, value",
        "aged_balance": "as_of, customer_id, currency, bucket, amount, invoice_count",
    }[table]
    where = "" if as_of is None else f" where as_of = '{as_of.isoformat()}'"
    return sorted(con.execute(f'select {cols} from "{schema}".{table}{where}').fetchall())


def duck_rows(db, table, as_of=None):
    cols = {
        "recovery_metrics": "as_of, currency, metric, dimension, dimension_value, value",
        "aged_balance": "as_of, customer_id, currency, bucket, amount, invoice_count",
    }[table]
    with duckdb.connect(str(db), read_only=True) as con:
        where = "" if as_of is None else " where as_of = ?"
        return sorted(con.execute(f"select {cols} from {table}{where}", [as_of] if as_of else []).fetchall())


def test_upsert_twice_gives_one_row_per_key(db, pg_schema):
    con, schema = pg_schema
    first = write_back(str(db), AS_OF, PG, schema=schema)
    assert first["dates"] == ["2026-06-29", "2026-06-30"]  # the earlier date was never written: it goes too
    rows = pg_rows(con, schema, "recovery_metrics")
    assert rows == duck_rows(db, "recovery_metrics")
    assert pg_rows(con, schema, "aged_balance") == duck_rows(db, "aged_balance")
    written_at = con.execute(f'select max(written_at) from "{schema}".recovery_metrics').fetchone()[0]

    second = write_back(str(db), AS_OF, PG, schema=schema)
    assert second["dates"] == ["2026-06-30"]  # the run date again; 06-29 is already there
    assert pg_rows(con, schema, "recovery_metrics") == rows
    n, keys = con.execute(
        f"""select count(*), count(distinct (as_of, currency, metric, dimension, dimension_value))
            from "{schema}".recovery_metrics"""
    ).fetchone()
    assert n == keys == len(rows)
    # unchanged values are not rewritten: a BI tool's incremental load sees nothing new
    assert con.execute(f'select max(written_at) from "{schema}".recovery_metrics').fetchone()[0] == written_at
    # exact decimals end to end
    assert con.execute(
        f"""select value from "{schema}".recovery_metrics where as_of = '2026-06-30' and currency = 'EUR'
            and metric = 'cei_30d'"""
    ).fetchone()[0] == D("52.3810")
    pk = con.execute(
        f"""select array_agg(a.attname order by array_position(i.indkey, a.attnum)) from pg_index i
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
            where i.indrelid = '"{schema}".aged_balance'::regclass and i.indisprimary"""
    ).fetchone()[0]
    assert pk == ["as_of", "customer_id", "currency", "bucket"]


def test_a_rerun_of_the_date_updates_values_and_drops_keys_it_no_longer_has(db, pg_schema, source_writer):
    """D is re-run after a payment of 500.00 on IA2 arrives: values change, IA2's bucket empties (its
    aged_balance row and the dispute hold-kind rows disappear) — PostgreSQL shows the new run only."""
    con, schema = pg_schema
    write_back(str(db), AS_OF, PG, schema=schema)
    changed = source_writer(
        "changed",
        customers=CUSTOMERS,
        invoices=INVOICES,
        holds=HOLDS,
        payments=PAYMENTS
        + [
            {
                "payment_id": "PA2",
                "customer_id": "A1",
                "invoice_id": "IA2",
                "paid_date": "2026-06-30",
                "amount": "500.00",
            }
        ],
    )
    prepare(db, changed, AS_OF)
    measure(str(db), AS_OF)
    write_back(str(db), AS_OF, PG, schema=schema)
    assert pg_rows(con, schema, "recovery_metrics", AS_OF) == duck_rows(db, "recovery_metrics", AS_OF)
    assert pg_rows(con, schema, "aged_balance", AS_OF) == duck_rows(db, "aged_balance", AS_OF)
    assert con.execute(
        f"""select value from "{schema}".recovery_metrics where as_of = '2026-06-30' and currency = 'EUR'
            and metric = 'open_ar' and dimension = 'all'"""
    ).fetchone()[0] == D("800.0000")
    assert (
        con.execute(
            f"""select count(*) from "{schema}".recovery_metrics where as_of = '2026-06-30'
            and metric = 'overdue_held' and dimension = 'hold_kind'"""
        ).fetchone()[0]
        == 0
    )
    # the other date is untouched
    assert pg_rows(con, schema, "recovery_metrics", date(2026, 6, 29)) == duck_rows(
        db, "recovery_metrics", date(2026, 6, 29)
    )


class _Relay:
    """A TCP relay to the real PostgreSQL on a port of its own, that can be switched off and on:
    the same target URL is unreachable, then reachable again."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.server: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def stop(self) -> None:
        if self.server:
            try:
                self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() and stops listening at once
            except OSError:
                pass
            self.server.close()
            self.server = None

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 5432))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_unreachable_target_is_a_clear_error_and_the_next_write_back_catches_up(db, pg_schema):
    con, schema = pg_schema
    relay = _Relay()
    target = f"postgresql://postgres:s3cret-pw@127.0.0.1:{relay.port}/test"
    relay.start()
    try:
        assert write_back(str(db), date(2026, 6, 29), target, schema=schema)["dates"] == ["2026-06-29", "2026-06-30"]
    finally:
        relay.stop()
    before = duck_rows(db, "recovery_metrics")

    # D+1 is measured, and PostgreSQL is down when it is written back
    next_day = date(2026, 7, 1)
    src = db.parent / "src"
    prepare(db, src, next_day)
    measure(str(db), next_day)
    with pytest.raises(WriteBackError) as err:
        write_back(str(db), next_day, target, schema=schema)
    message = str(err.value)
    assert f"127.0.0.1:{relay.port}/test" in message and "2026-07-01" in message and "next write-back" in message
    assert "s3cret-pw" not in message
    # DuckDB is intact: the date's metrics are there, the ledger does not claim it was written
    assert len(duck_rows(db, "recovery_metrics")) > len(before)
    with duckdb.connect(str(db), read_only=True) as duck:
        ledger = duck.execute("select as_of, target_label from writeback_log order by as_of").fetchall()
        assert not duck.execute("select count(*) from duckdb_tables() where sql ilike '%s3cret%'").fetchone()[0]
    assert [d for d, _ in ledger] == [date(2026, 6, 29), date(2026, 6, 30)]
    assert all("s3cret" not in label and label.endswith(f"#{schema}") for _, label in ledger)
    assert not con.execute(
        f"""select count(*) from "{schema}".recovery_metrics where as_of = '2026-07-01'"""
    ).fetchone()[0]

    # the next night (PostgreSQL back): 07-02's write-back also writes the missed 07-01
    relay.start()
    try:
        day2 = date(2026, 7, 2)
        prepare(db, src, day2)
        measure(str(db), day2)
        assert write_back(str(db), day2, target, schema=schema)["dates"] == ["2026-07-01", "2026-07-02"]
    finally:
        relay.stop()
    assert pg_rows(con, schema, "recovery_metrics") == duck_rows(db, "recovery_metrics")


def test_port_1_names_the_target_without_the_password(db, tmp_path):
    with pytest.raises(WriteBackError, match=r"postgresql://postgres@127\.0\.0\.1:1/test#relance failed") as err:
        write_back(str(db), AS_OF, "postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(err.value)
    with warehouse.open_db(db, read_only=True) as con:
        assert con.execute("select count(*) from writeback_log").fetchone()[0] == 0
        assert con.execute("select count(*) from recovery_metrics where as_of = ?", [AS_OF]).fetchone()[0] > 50


def test_backfill_rewrites_a_span_with_since(db, pg_schema):
    con, schema = pg_schema
    write_back(str(db), AS_OF, PG, schema=schema)
    again = write_back(str(db), AS_OF, PG, schema=schema, since=date(2026, 6, 1))
    assert again["dates"] == ["2026-06-29", "2026-06-30"]


def test_a_target_created_before_the_outcome_columns_gains_them(db, pg_schema):
    """A target whose debtor_profile was created by an earlier release (no broken_promises, no
    disputes) gains both columns at the next write-back, filled from DuckDB."""
    from tasks.writeback import TABLES

    con, schema = pg_schema
    ddl = "\n".join(
        line
        for line in TABLES["debtor_profile"][2].splitlines()
        if "broken_promises" not in line and "disputes" not in line
    )
    con.execute(f'create schema if not exists "{schema}"')
    con.execute(f'create table "{schema}".debtor_profile ({ddl})')
    write_back(str(db), AS_OF, PG, schema=schema)
    cols = "customer_id, currency, broken_promises, disputes"
    pg = sorted(con.execute(f'select {cols} from "{schema}".debtor_profile').fetchall())
    with duckdb.connect(str(db), read_only=True) as duck:
        assert pg == sorted(duck.execute(f"select {cols} from debtor_profile").fetchall())
    assert pg and all(r[2:] == (0, 0) for r in pg)  # no outcome recorded in these data


def test_debtor_profiles_and_the_credit_watch_are_written_back(db, pg_schema):
    """The profiles, the credit watch and the expected collections of each date land beside the metrics, one row per unit and
    date, exact decimals, and a re-run leaves exactly the DuckDB rows."""
    con, schema = pg_schema
    profile_cols = (
        "as_of, customer_id, currency, paid_invoices, avg_days_late, overdue_amount, broken_promises, disputes, "
        "score, risk_class"
    )
    watch_cols = "as_of, customer_id, currency, risk_class, score, overdue_amount, max_days_past_due, reasons"
    for _ in range(2):
        write_back(str(db), AS_OF, PG, schema=schema)
        for table, cols in (
            ("debtor_profile", profile_cols),
            ("credit_watch", watch_cols),
            ("cash_forecast", "as_of, currency, horizon_days, expected_amount, invoice_count"),
        ):
            pg = sorted(con.execute(f'select {cols} from "{schema}".{table}').fetchall())
            with duckdb.connect(str(db), read_only=True) as duck:
                local = sorted(duck.execute(f"select {cols} from {table}").fetchall())
            assert pg == local
    with duckdb.connect(str(db), read_only=True) as duck:
        assert duck.execute("select count(*) from debtor_profile where as_of = ?", [AS_OF]).fetchone()[0] > 0
        assert duck.execute("select count(*) from cash_forecast where as_of = ?", [AS_OF]).fetchone()[0] > 0
