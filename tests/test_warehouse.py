"""The warehouse's building blocks: parameterized temp views and transactions."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from tasks import warehouse


@pytest.fixture
def con(tmp_path):
    c = warehouse.connect(tmp_path / "w.duckdb")
    c.execute("create table stg_invoices (invoice_id varchar, issue_date date)")
    c.execute(
        "insert into stg_invoices values ('A', date '2026-03-01'), ('B', date '2026-03-10'), ('C', date '2026-03-20')"
    )
    yield c
    c.close()


def test_a_temp_view_reads_the_date_it_was_last_built_for(con):
    # int_invoices_as_of is a temp view: nothing copied, and each build binds its own as_of
    warehouse.run_model(con, "intermediate/int_invoices_as_of", {"as_of": date(2026, 3, 10)})
    assert [r[0] for r in con.execute("select invoice_id from int_invoices_as_of order by 1").fetchall()] == ["A", "B"]
    assert (
        con.execute(
            "select table_type from information_schema.tables where table_name = 'int_invoices_as_of'"
        ).fetchone()[0]
        == "VIEW"
    )
    warehouse.run_model(con, "intermediate/int_invoices_as_of", {"as_of": date(2026, 3, 1)})
    assert [r[0] for r in con.execute("select invoice_id from int_invoices_as_of").fetchall()] == ["A"]
    # a value is bound, never spliced into the SQL text
    warehouse.run_model(con, "intermediate/int_invoices_as_of", {"as_of": "2026-03-01' or true --"})
    text = con.execute("select sql from duckdb_views() where view_name = 'int_invoices_as_of'").fetchone()[0]
    assert "getvariable('relance_int_invoices_as_of_as_of')" in text and "or true" not in text
    with pytest.raises(duckdb.ConversionException):
        con.execute("select * from int_invoices_as_of").fetchall()


def test_a_transaction_commits_or_rolls_back_and_does_not_nest(con):
    con.execute("create table t (x integer)")
    with pytest.raises(duckdb.TransactionException):
        with warehouse.transaction(con):
            con.execute("insert into t values (1)")
            with warehouse.transaction(con):  # refused: a commit inside would not be a real one
                con.execute("insert into t values (2)")
    assert con.execute("select count(*) from t").fetchone()[0] == 0  # the outer block rolled back
    with warehouse.transaction(con):
        con.execute("insert into t values (3)")
    assert con.execute("select list(x) from t").fetchone()[0] == [3]
    with pytest.raises(ValueError):
        with warehouse.transaction(con):  # it rolls back its own work on error
            con.execute("insert into t values (4)")
            raise ValueError
    assert con.execute("select list(x) from t").fetchone()[0] == [3]
