"""The fleet (issue 17): shard key, split, per-shard runs with exports, merge, reshard, a failed shard.

The equality proof: the sample source (with a few bad rows added) over a history — a backfill of the
days before D, then the nightly run of D (HISTORY_DAYS below: the issue's 30 days by default;
RELANCE_FLEET_TEST_DAYS=15 for a quicker run) — as a fleet of 4 shards and as one database gives
the same actions, deliveries (ids and statuses), aged balance, rejected rows (the original line
numbers), every recovery metric of every date (Decimal equality, every column) and the same report
figures; resharded 4 → 3, the next day's run still equals the single database's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.backfill import backfill_run
from flows.nightly import nightly_run
from relance.core.policy import load_policy
from relance.sample_data import generate
from tasks.fleet.export import shard_complete
from tasks.fleet.merge import merge_date
from tasks.fleet.reshard import reshard
from tasks.fleet.shards import SHARD_MACRO, read_fleet_config, shard_db, shard_of, shard_source
from tasks.fleet.split import split_source
from tasks.report.data import _open_read_only, gather
from tests.conftest import write_source

D = date(2026, 11, 30)
#: The history's length: a backfill of HISTORY_DAYS − 1 days, then the run of D — the issue's 30 days
#: by default; RELANCE_FLEET_TEST_DAYS=15 halves the time (each day is a replay on every shard and on
#: the single database).
HISTORY_DAYS = int(os.environ.get("RELANCE_FLEET_TEST_DAYS", "30"))
START = D - timedelta(days=HISTORY_DAYS - 1)
SHARDS = 4
CUSTOMERS = 80


# ------------------------------------------------------------------------------- the shard key


def test_shard_of_is_md5_first_16_hex_digits_mod_n_in_python_and_sql():
    # worked by hand: md5("C000001") starts b343e4a787cfc51a; 16 ≡ 0 (mod 4), so the value mod 4 is
    # its last hex digit mod 4: a = 10 → 2. md5("Zoë-Ñ") → …c91f: f = 15 → 3. md5("顧客42") → …0606: 6 → 2.
    assert hashlib.md5(b"C000001").hexdigest()[:16] == "b343e4a787cfc51a"
    assert [shard_of(i, 4) for i in ("C000001", "Zoë-Ñ", "顧客42")] == [2, 3, 2]
    assert shard_of("C000001", 1) == 0
    ids = ["C000001", "Zoë-Ñ", "顧客42", "", " padded ", "x" * 500, "emoji 🧾", "Ω≈ç√"] + [
        f"K{i:07d}" for i in range(3000)
    ]
    con = duckdb.connect()
    con.execute(SHARD_MACRO)
    for n in (1, 3, 4, 7, 1000):
        got = con.execute(
            "select id, relance_shard(id, $n) from unnest($ids) as t(id)", {"ids": ids, "n": n}
        ).fetchall()
        assert got == [(i, shard_of(i, n)) for i in ids]
    assert con.execute("select relance_shard(null, 4)").fetchone()[0] is None  # split sends it to shard 0


# ------------------------------------------------------------------------------- the source


def _bad_rows(folder: Path) -> None:
    """Rows a single database rejects, appended to the sample CSVs: lines 2 + rows … of the files."""
    with (folder / "invoices.csv").open("a", encoding="utf-8") as f:
        f.write("BAD-AMOUNT,C000001,invoice,2026-10-01,2026-10-31,12x.00,EUR\n")  # amount not a number
        f.write("NO-CUSTOMER,,invoice,2026-10-01,2026-10-31,10.00,EUR\n")  # no customer: shard 0
        f.write("TOO,MANY,FIELDS,2026-10-01,2026-10-31,10.00,EUR,extra\n")  # structural: shard 0
    with (folder / "payments.csv").open("a", encoding="utf-8") as f:
        f.write("P-UNKNOWN,C999999,,2026-11-02,5.00,EUR\n")  # unknown customer


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "sample"
    generate(folder, customers=CUSTOMERS, seed=7, as_of=D)
    _bad_rows(folder)
    return folder


def test_split_puts_each_customer_in_one_shard_and_loses_no_row(source, tmp_path):
    summary = split_source(str(source), tmp_path / "root", SHARDS)
    assert read_fleet_config(tmp_path / "root") == {"shards": SHARDS, "version": 1}
    con = duckdb.connect()
    for entity in ("customers", "invoices", "payments", "holds"):
        text = (source / f"{entity}.csv").read_text(encoding="utf-8")
        csv_rows = len([line for line in text.splitlines()[1:] if line.strip()])  # the header is no row
        if entity == "invoices":
            csv_rows -= 1  # the structural reject (more fields than the header) is no row
        got = 0
        for k in range(SHARDS):
            path = shard_source(tmp_path / "root", k) / f"{entity}.parquet"
            ids = con.execute(f"select distinct trim(customer_id) from read_parquet('{path}')").fetchall()
            # every row of shard k is a customer of shard k (no customer: shard 0)
            assert all((shard_of(i, SHARDS) if i else 0) == k for (i,) in ids), (entity, k)
            got += con.execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]
            assert (
                summary["by_shard"][k][entity]
                == con.execute(f"select count(*) from read_parquet('{path}')").fetchone()[0]
            )
        assert got == csv_rows == summary["rows"][entity], entity
    assert summary["structural_rejects"] == 1
    # original row numbers travel with the rows: BAD-AMOUNT is the invoices file's row (lines + header)
    lines = (source / "invoices.csv").read_text(encoding="utf-8").splitlines()
    bad_line = next(n for n, line in enumerate(lines, start=1) if line.startswith("BAD-AMOUNT"))
    k = shard_of("C000001", SHARDS)
    row = con.execute(
        f"select _relance_row from read_parquet('{shard_source(tmp_path / 'root', k) / 'invoices.parquet'}') "
        "where invoice_id = 'BAD-AMOUNT'"
    ).fetchone()
    assert row == (bad_line,)


# ------------------------------------------------------------------------------- one database vs a fleet


def _fleet_history(source: Path, root: Path, shards: int, days: list[date]) -> None:
    """The fleet's history, in process (the CLI's subprocesses are tested below): backfill, then runs."""
    split_source(str(source), root, shards)
    for k in range(shards):
        backfill_run(
            START,
            days[0] - timedelta(days=1),
            str(shard_source(root, k)),
            db=str(shard_db(root, k)),
            fleet_root=str(root),
            shard=k,
        )
    for d in [START + timedelta(n) for n in range((days[0] - START).days)]:
        merge_date(root, d, shards)
    for d in days:
        _fleet_run(source, root, shards, d)


def _fleet_run(source: Path, root: Path, shards: int, day: date) -> None:
    split_source(str(source), root, shards)
    for k in range(shards):
        nightly_run(day, str(shard_source(root, k)), db=str(shard_db(root, k)), fleet_root=str(root), shard=k)
    merge_date(root, day, shards)


@pytest.fixture(scope="module")
def single(source, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("single") / "relance.duckdb"
    backfill_run(START, D - timedelta(days=1), str(source), db=str(db))
    nightly_run(D, str(source), db=str(db))
    return db


@pytest.fixture(scope="module")
def fleet(source, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fleet4")
    _fleet_history(source, root, SHARDS, [D])
    return root


QUERIES = {
    "dunning_actions": """select action_id, as_of, customer_id, currency, episode_id, stage, stage_rank,
                                 driving_invoice_id, amount_due, invoice_ids, mode from dunning_actions order by action_id""",
    "deliveries": "select delivery_id, action_id, channel, status from deliveries order by delivery_id",
    "aged_balance": "select * from aged_balance where as_of = $d order by all",
    "aged_by_bucket": "select currency, bucket, sum(amount) from aged_balance where as_of = $d group by all order by all",
    "invoice_snapshot": "select * from invoice_snapshot where as_of = $d order by invoice_id",
    "unit_stage": "select * from unit_stage where as_of = $d order by customer_id, currency",
    "rejected_rows": "select as_of, source, entity, row_number, raw, reason, action from rejected_rows where as_of = $d order by all",
    "recovery_metrics": "select * from recovery_metrics order by as_of, currency, metric, dimension, dimension_value",
    "debtor_profile": "select * exclude (built_by_run) from debtor_profile where as_of = $d order by customer_id, currency",
    "expected_payments": "select * from expected_payments where as_of = $d order by invoice_id",
    "cash_forecast": "select * from cash_forecast order by all",
}


def _rows(db: Path, day: date) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(q, {"d": day} if "$d" in q else {}).fetchall() for name, q in QUERIES.items()}
    finally:
        con.close()


def _report_figures(db: Path, day: date) -> dict:
    with _open_read_only(str(db)) as con:
        data = dataclasses.asdict(gather(con, day, load_policy(None), db=str(db)))
    data.pop("db")
    return data


def test_a_fleet_of_4_equals_one_database(single, fleet):
    one, many = _rows(single, D), _rows(fleet / "fleet.duckdb", D)
    for name in QUERIES:
        assert many[name] == one[name], name
    # the history is there: 30 dates of metrics, actions over the month, rejected rows with their lines
    assert len({r[0] for r in one["recovery_metrics"]}) == HISTORY_DAYS
    assert len(one["dunning_actions"]) > 20 and {r[3] for r in one["deliveries"]} >= {"simulated"}
    reasons = {(r[2], r[5].split(";")[0][:20]) for r in one["rejected_rows"]}
    assert len(one["rejected_rows"]) == 4, reasons  # the four bad rows, each on its original line
    assert _report_figures(fleet / "fleet.duckdb", D) == _report_figures(single, D)


def test_reshard_4_to_3_keeps_counts_and_the_next_run_equals_one_database(single, fleet, source, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(fleet, root)
    counts = {}
    for k in range(SHARDS):
        con = duckdb.connect(str(shard_db(root, k)), read_only=True)
        for t in (
            "dunning_actions",
            "deliveries",
            "dunning_episodes",
            "delivery_events",
            "unit_stage",
            "debtor_profile",
        ):
            counts[t] = counts.get(t, 0) + con.execute(f"select count(*) from {t}").fetchone()[0]
        con.close()
    # an event of no known delivery, applied from the shared journal by two shards: kept once
    for k in (0, 1):
        con = duckdb.connect(str(shard_db(root, k)))
        con.execute(
            "insert into unmatched_events (event_key, source, received_at, delivery_id, raw) "
            "values ('E1', 'sendgrid', timestamp '2026-11-30 08:00:00', 'nowhere|email', '{}')"
        )
        con.close()
    res = reshard(root, 3)
    assert res["tables"]["unmatched_events"] == 1
    con = duckdb.connect(str(shard_db(root, 0)), read_only=True)
    assert con.execute("select event_key from unmatched_events").fetchall() == [("E1",)]
    con.close()
    assert res["from"] == 4 and res["to"] == 3 and read_fleet_config(root)["shards"] == 3
    for t, n in counts.items():
        assert res["tables"][t] == n, t
        after = 0
        for k in range(3):
            con = duckdb.connect(str(shard_db(root, k)), read_only=True)
            after += con.execute(f"select count(*) from {t}").fetchone()[0]
            # every customer's rows are on its new shard
            if t != "deliveries" and t != "delivery_events":
                ids = con.execute(f"select distinct customer_id from {t}").fetchall()
                assert all(shard_of(i, 3) == k for (i,) in ids), (t, k)
            con.close()
        assert after == n, t
    assert not shard_db(root, 3).exists()
    # the next day: one database and the fleet of 3 give the same rows
    day = D + timedelta(days=1)
    one_db = tmp_path / "one" / "relance.duckdb"
    one_db.parent.mkdir()
    shutil.copy(single, one_db)
    nightly_run(day, str(source), db=str(one_db))
    _fleet_run(source, root, 3, day)
    one, many = _rows(one_db, day), _rows(root / "fleet.duckdb", day)
    for name in QUERIES:
        if name == "cash_forecast":  # the fleet's merged history holds the forecasts of the 30 days before too
            continue
        if name == "recovery_metrics":
            assert [r for r in many[name] if r[0] == day] == [r for r in one[name] if r[0] == day]
            continue
        assert many[name] == one[name], name


# ------------------------------------------------------------------------------- the CLI, a failed shard


def test_a_failed_shard_fails_the_command_in_one_line_and_a_rerun_completes_only_it(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[{"customer_id": f"C{i}", "name": f"Customer {i}", "email": f"c{i}@example.com"} for i in range(6)],
        invoices=[
            {
                "invoice_id": f"I{i}",
                "customer_id": f"C{i}",
                "issue_date": "2026-10-01",
                "due_date": "2026-10-31",
                "amount": "100.00",
                "currency": "EUR",
            }
            for i in range(6)
        ],
    )
    root = tmp_path / "root"
    runner = CliRunner()
    from relance.cli import app

    # the history first, from the CLI: each shard replays the two days, every date is merged
    res = runner.invoke(
        app,
        [
            "fleet",
            "backfill",
            "--start",
            (D - timedelta(days=2)).isoformat(),
            "--end",
            (D - timedelta(days=1)).isoformat(),
            "--source",
            str(src),
            "--root",
            str(root),
            "--shards",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "shards:   0 (" in res.output and ", 1 (" in res.output
    con = duckdb.connect(str(root / "fleet.duckdb"), read_only=True)
    assert con.execute("select count(distinct as_of) from recovery_metrics").fetchone()[0] == 2
    assert con.execute("select count(*) from stg_customers").fetchone()[0] == 6
    con.close()
    # then the night of D with shard 1's database path a folder: its run fails with a one-line UserError
    bad = shard_db(root, 1)
    bad.rename(tmp_path / "shard-1.duckdb")
    bad.mkdir()
    args = ["fleet", "run", "--as-of", D.isoformat(), "--source", str(src), "--root", str(root), "--shards", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code != 0
    message = str(res.exception)
    assert "\n" not in message and "shard 1 failed" in message and str(root / "shard-1" / "logs") in message
    assert shard_complete(root, 0, D) and not shard_complete(root, 1, D)
    bad.rmdir()
    (tmp_path / "shard-1.duckdb").rename(bad)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "shards:   1 (" in res.output and "already complete: 0" in res.output
    assert shard_complete(root, 1, D) and (root / "fleet.duckdb").exists()
    con = duckdb.connect(str(root / "fleet.duckdb"), read_only=True)
    assert con.execute("select count(distinct as_of) from recovery_metrics").fetchone()[0] == 3
    con.close()
    # another N on the same root is refused, one line naming reshard
    res = runner.invoke(app, args[:-1] + ["3"])
    assert res.exit_code != 0 and "relance fleet reshard" in str(res.exception)


def test_each_shard_rejects_the_rows_one_database_rejects_under_their_original_rows(tmp_path):
    """A Parquet invoices file and a CSV customers file with bad rows: the shards' rejected_rows,
    together, are one database's — same file, same row number, same reason."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.ingest import ingest

    src = write_source(tmp_path / "src", customers=[{"customer_id": f"C{i}", "name": f"N{i}"} for i in range(4)])
    (src / "invoices.csv").unlink()
    with (src / "customers.csv").open("a", encoding="utf-8") as f:
        f.write("C9,N9,x,y,z,1,2,3,4,5,6,7,8\n")  # row 6: more fields than the header (structural)
        f.write(",no id\n")  # row 7: no customer_id
    rows = [  # Parquet rows: row 1 is the header, so the k-th row is row k + 1
        ("I0", "C0", "invoice", "2026-10-01", "2026-10-31", "10.00", "EUR"),
        ("I1", "C1", "invoice", "2026-10-01", "2026-10-31", "1O.00", "EUR"),  # row 3: letter O
        ("I2", "C2", "invoice", "2026-10-01", "2026-09-30", "10.00", "EUR"),  # row 4: due before issue
        ("I3", "C7", "invoice", "2026-10-01", "2026-10-31", "10.00", "EUR"),  # row 5: unknown customer
        ("I4", "C3", "invoice", "2026-10-01", "2026-10-31", "10.00", "EUR"),
    ]
    names = ["invoice_id", "customer_id", "kind", "issue_date", "due_date", "amount", "currency"]
    pq.write_table(pa.table([pa.array(list(c)) for c in zip(*rows)], names=names), src / "invoices.parquet")

    def rejected(db: Path) -> list[tuple]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("select source, entity, row_number, reason from rejected_rows order by all").fetchall()
        finally:
            con.close()

    ingest(str(src), str(tmp_path / "one.duckdb"), D)
    one = rejected(tmp_path / "one.duckdb")
    assert [(r[1], r[2]) for r in one] == [
        ("customers", 6),
        ("customers", 7),
        ("invoices", 3),
        ("invoices", 4),
        ("invoices", 5),
    ]
    root = tmp_path / "root"
    split_source(str(src), root, 3)
    many = []
    for k in range(3):
        ingest(str(shard_source(root, k)), str(shard_db(root, k)), D)
        many += rejected(shard_db(root, k))
    assert sorted(many) == one
    assert any(r[2] in (6, 7) for r in rejected(shard_db(root, 0)))  # no customer, unreadable: shard 0


# ------------------------------------------------------------------------------- late-charge statements


def test_late_charge_statements_reach_the_fleet_its_approval_and_move_with_their_customer(tmp_path):
    """Statements of late-payment charges (issue 16) on a fleet of 2 vs one database: the policy with
    `late_charges_statement.enabled`, a one-day backfill of 2026-11-30 (its replay simulates October's
    statements: their statement day, Mon 2026-11-02, is past), then the live night of Tue 2026-12-01,
    the first business day of December: November's statements, pending approval. The fleet's
    statements, charges, charge periods, report line and write-back rows are the single database's;
    the fleet's one approval lists every shard's pending statements; reshard 2 → 3 moves each
    statement, its charges, its periods (keyed by invoice_id alone) and its deliveries to the shard
    of its customer."""
    from flows.fleet import _pending_by_shard
    from relance.core.paths import DEFAULT_POLICY
    from tasks.approve import pending_notices
    from tasks.writeback import TABLES

    policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    policy.write_text(
        text.replace("late_charges_statement:\n  enabled: false", "late_charges_statement:\n  enabled: true"),
        encoding="utf-8",
    )
    src = tmp_path / "sample"
    generate(src, customers=40, seed=7, as_of=D)
    night = D + timedelta(days=1)
    one = tmp_path / "one" / "relance.duckdb"
    backfill_run(D, D, str(src), db=str(one), policy=str(policy))
    nightly_run(night, str(src), db=str(one), policy=str(policy))
    root = tmp_path / "root"
    split_source(str(src), root, 2)
    for k in range(2):
        backfill_run(D, D, str(shard_source(root, k)), db=str(shard_db(root, k)), policy=str(policy),
                     fleet_root=str(root), shard=k)  # fmt: skip
    merge_date(root, D, 2)
    for k in range(2):
        nightly_run(night, str(shard_source(root, k)), db=str(shard_db(root, k)), policy=str(policy),
                    fleet_root=str(root), shard=k)  # fmt: skip
    fleet = merge_date(root, night, 2)

    queries = {
        "statements": """select statement_id, as_of, customer_id, currency, period, mode, status, invoice_ids,
                                interest_amount, indemnity_amount, charges_total from late_charge_statements order by all""",
        "charges": "select * exclude (statement_id), statement_id from late_charges order by invoice_id",
        "periods": "select * from late_charge_periods order by invoice_id, period_start",
        "deliveries": "select delivery_id, status from deliveries where starts_with(action_id, 'LC|') order by all",
        "write_back": f"select * from ({TABLES['late_charge_statements'][3]}) order by all",
    }

    def rows(db: Path) -> dict[str, list]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return {n: con.execute(q, {"as_of": night} if "$as_of" in q else {}).fetchall() for n, q in queries.items()}
        finally:
            con.close()

    single, many = rows(one), rows(fleet)
    for name in queries:
        assert many[name] == single[name], name
    live = [r for r in single["statements"] if r[5] == "live"]
    # November's live statements, waiting for approval; October's simulated by the replay
    assert live and {(r[4], r[6]) for r in live} == {("2026-11", "pending_approval")}
    assert {(r[4], r[6]) for r in single["statements"] if r[5] == "replay"} == {("2026-10", "simulated")}
    assert single["periods"] and len(single["write_back"]) == len(live)
    report = _report_figures(fleet, night)
    assert report["late_charges"] and report["late_charges"] == _report_figures(one, night)["late_charges"]
    assert report == _report_figures(one, night)

    # the fleet's one approval (flows/fleet.py) lists what `relance approve` lists on one database
    by_shard = _pending_by_shard(str(root), [0, 1], night)
    pending = sorted(n["action_id"] for notices in by_shard.values() for n in notices)
    assert pending == sorted(n["action_id"] for n in pending_notices(str(one), night))
    waiting = {d.rsplit("|", 1)[0] for d, status in single["deliveries"] if status == "pending_approval"}
    assert waiting and waiting == {i for i in pending if i.startswith("LC|")}  # a statement with a delivery to approve

    # reshard 2 → 3: each statement's rows on its customer's new shard, none lost
    res = reshard(root, 3)
    assert res["tables"]["late_charge_statements"] == len(single["statements"])
    assert res["tables"]["late_charge_periods"] == len(single["periods"])
    seen = {"statements": 0, "periods": 0}
    for k in range(3):
        con = duckdb.connect(str(shard_db(root, k)), read_only=True)
        for t in ("late_charge_statements", "late_charges"):
            ids = con.execute(f"select distinct customer_id from {t}").fetchall()
            assert all(shard_of(i, 3) == k for (i,) in ids), (t, k)
        # every period's invoice, every statement delivery, beside its charge / its statement
        assert not con.execute(
            "select invoice_id from late_charge_periods except select invoice_id from late_charges"
        ).fetchall()
        assert not con.execute(
            "select action_id from deliveries where starts_with(action_id, 'LC|') "
            "except select statement_id from late_charge_statements"
        ).fetchall()
        seen["statements"] += con.execute("select count(*) from late_charge_statements").fetchone()[0]
        seen["periods"] += con.execute("select count(*) from late_charge_periods").fetchone()[0]
        con.close()
    assert seen == {"statements": len(single["statements"]), "periods": len(single["periods"])}
