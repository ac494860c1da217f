"""Money is DECIMAL(18,2) from file to table: a sum over many invoices equals the exact decimal sum."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flows.nightly import nightly_run


def test_sum_of_300k_amounts_is_exact(tmp_path):
    n = 300_000
    rng = np.random.default_rng(7)
    # amounts chosen to trip binary floats: many x.x0/x.x5 cents and large values
    cents = rng.integers(1, 10**11, size=n) // rng.choice([1, 7, 1000], size=n) + 1
    src = tmp_path / "src"
    src.mkdir()
    pacsv.write_csv(
        pa.table(
            {
                "customer_id": [f"C{i}" for i in range(1000)],
                "name": [f"Client {i}" for i in range(1000)],
            }
        ),
        src / "customers.csv",
    )
    amounts = [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]
    pacsv.write_csv(
        pa.table(
            {
                "invoice_id": [f"I{i}" for i in range(n)],
                "customer_id": [f"C{i % 1000}" for i in range(n)],
                "issue_date": ["2026-01-01"] * n,
                "due_date": ["2026-01-31"] * n,
                "amount": amounts,
            }
        ),
        src / "invoices.csv",
    )
    expected = Decimal(int(cents.sum())) / 100
    db = tmp_path / "r.duckdb"
    nightly_run(as_of=date(2026, 3, 31), source=str(src), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        total, typ = con.execute("select sum(open_amount), typeof(sum(open_amount)) from invoice_snapshot").fetchone()
        aged_total = con.execute("select sum(amount) from aged_balance").fetchone()[0]
    assert total == expected and aged_total == expected
    assert typ.startswith("DECIMAL")
    # a float sum of the same amounts would not be exact
