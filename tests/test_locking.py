"""One writer per DuckDB file: a second process is refused clearly, or waits when asked to."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from relance.core.errors import DatabaseBusy
from tasks import warehouse

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1]); print("held", flush=True); time.sleep(float(sys.argv[2])); con.close()
"""


def _hold(db, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_database_is_refused_with_a_clear_message(tmp_path):
    db = tmp_path / "r.duckdb"
    proc = _hold(db, 5)
    try:
        with pytest.raises(
            DatabaseBusy, match=rf"database {db} is in use by another relance run \(process {proc.pid}\)"
        ):
            warehouse.connect(db, wait_s=0)
    finally:
        proc.kill()
        proc.wait()


def test_waiting_for_the_other_run_to_finish(tmp_path):
    db = tmp_path / "r.duckdb"
    proc = _hold(db, 2)
    started = time.monotonic()
    con = warehouse.connect(db, wait_s=30)
    waited = time.monotonic() - started
    con.execute("select 1").fetchall()
    con.close()
    proc.wait()
    assert 0.5 < waited < 30
