"""The audit record (issue 11, §2): one row of `runs` per run, written at the start and completed at
the end; actions, decisions and delivery outcomes name their run; the finance query of docs/audit.md
answers which policy and which wording produced a letter, and who approved it.

Expected values are worked out by hand from the tiny sources below (counts, latest dates) and by
hashing the files with hashlib here, independently of tasks/audit.py."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import subprocess
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import flows.nightly  # noqa: F401 — importing Prefect sets up its log handlers: on the real stderr, not CliRunner's
from relance.cli import app
from relance.core.paths import DEFAULT_POLICY, ROOT, TEMPLATES_DIR
from tests.ladder_helpers import customer, hold, invoice, payment, run_days, write_source

A1, A2 = "C1|EUR|1|formal_notice", "C2|EUR|1|formal_notice"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _templates_sha() -> str:
    """docs/audit.md: for each file in path order, its path relative to templates/, NUL, its bytes, NUL."""
    h = hashlib.sha256()
    for p in sorted(p for p in TEMPLATES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(p.relative_to(TEMPLATES_DIR).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _git_describe() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--tags", "--always", "--dirty"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else "relance 0.1.0"


def _runs(db, where: str = "true", params: dict | None = None) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(f"select * from runs where {where} order by started_at, run_id", params or {})
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    for r in rows:
        for k in ("source_fingerprint", "step_counts"):
            r[k] = json.loads(r[k]) if r[k] is not None else None
    return rows


def _q(db, sql, params=None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _small_source(folder: Path, *more_payments: dict) -> str:
    return write_source(
        folder,
        customers=[customer("C1"), customer("C2")],
        invoices=[
            invoice("I1", "C1", "2026-01-30", "800.00", issue="2025-12-31"),
            invoice("I2", "C2", "2026-01-30", "450.00", issue="2026-01-02"),
            invoice("I3", "C2", "2026-03-31", "abc", issue="2026-03-01"),
        ],
        payments=[payment("P1", "C2", "2026-02-10", "50.00", invoice_id="I2"), *more_payments],
        holds=[hold("H1", "C2", "2026-01-01", "2026-01-15")],
    )


@pytest.fixture
def small_source(tmp_path):
    """2 customers; invoices I1, I2 (due 01-30, issued 12-31 and 01-02) and I3 rejected (amount
    'abc', issued 03-01: its dates must not count); one payment (paid 02-10); one hold that ended
    01-15 (it holds nothing on 03-10)."""
    return _small_source(tmp_path / "src")


FINGERPRINT = {  # of small_source, by hand
    "customers": {"rows": 2},
    "invoices": {"rows": 2, "max_issue_date": "2026-01-02", "max_due_date": "2026-01-30"},
    "payments": {"rows": 1, "max_paid_date": "2026-02-10"},
    "holds": {"rows": 1, "max_start_date": "2026-01-01", "max_end_date": "2026-01-15"},
}


def test_nightly_run_leaves_one_completed_row_with_what_it_used(small_source, tmp_path):
    db = tmp_path / "r.duckdb"
    policy = tmp_path / "policy.yaml"  # the policy actually used: a copy, one comment apart from the default
    policy.write_bytes(DEFAULT_POLICY.read_bytes() + b"\n# finance, 2026-03: same rules\n")
    before = _utcnow()
    _cli(
        "run",
        "--as-of",
        "2026-03-10",
        "--source",
        small_source,
        "--db",
        str(db),
        "--outbox",
        str(tmp_path / "box"),
        "--policy",
        str(policy),
    )
    after = _utcnow()
    [run] = _runs(db)
    assert uuid.UUID(run["run_id"]) and run["flow_run_id"] is None
    assert (run["kind"], run["as_of"], run["outcome"], run["reason"]) == (
        "nightly",
        date(2026, 3, 10),
        "completed",
        None,
    )
    assert before <= run["started_at"] <= run["ended_at"] <= after
    assert run["actor"] == getpass.getuser() and run["source"] == small_source
    assert run["code_version"] == _git_describe()
    assert (run["policy_path"], run["policy_sha256"]) == (str(policy), _sha(policy))
    assert run["policy_sha256"] != _sha(DEFAULT_POLICY)
    assert run["channels_sha256"] == _sha(TEMPLATES_DIR / "channels.yaml")
    assert run["templates_sha256"] == _templates_sha()
    assert run["source_fingerprint"] == FINGERPRINT
    steps = run["step_counts"]
    assert steps["ingest"]["rows_read"] == {"customers": 2, "invoices": 3, "payments": 1, "holds": 1}
    assert steps["ingest"]["rows_loaded"] == {"customers": 2, "invoices": 2, "payments": 1, "holds": 1}
    assert steps["ingest"]["rows_rejected"] == 1
    # 03-10 is 39 days past the due date of both: each unit's first step is `due` (offset 0), by email
    assert steps["escalate"]["actions"] == 2 and steps["escalate"]["actions_by_stage"] == {"due": 2}
    assert steps["dispatch"]["totals"] == {"sent": 2}
    # the actions name the run that made them
    assert _q(db, "select action_id, run_id from dunning_actions order by action_id") == [
        ("C1|EUR|1|due", run["run_id"]),
        ("C2|EUR|1|due", run["run_id"]),
    ]


def test_a_three_day_backfill_leaves_three_rows(small_source, tmp_path):
    db = tmp_path / "r.duckdb"
    _cli("backfill", "--start", "2026-03-10", "--end", "2026-03-12", "--source", small_source, "--db", str(db))
    rows = _runs(db)
    assert [(r["kind"], r["as_of"], r["outcome"]) for r in rows] == [
        ("backfill", date(2026, 3, d), "completed") for d in (10, 11, 12)
    ]
    base = rows[0]["run_id"].split("/")[0]
    assert uuid.UUID(base) and [r["run_id"] for r in rows] == [f"{base}/2026-03-{d}" for d in (10, 11, 12)]
    assert all(r["source_fingerprint"] == FINGERPRINT and r["policy_sha256"] == _sha(DEFAULT_POLICY) for r in rows)
    assert all(r["started_at"] <= r["ended_at"] for r in rows)
    assert rows[0]["ended_at"] <= rows[1]["started_at"] and rows[1]["ended_at"] <= rows[2]["started_at"]
    # each date counts its own replay: the `due` step of both units on 03-10, nothing on 11 and 12 (8-day gap)
    assert [r["step_counts"]["replay"]["actions"] for r in rows] == [2, 0, 0]
    assert rows[0]["step_counts"]["replay"]["deliveries_by_status"] == {"simulated": 2}
    # the source is read once, as of the last date: its counts are on that date's row
    assert [("ingest" in r["step_counts"]) for r in rows] == [False, False, True]
    assert rows[2]["step_counts"]["ingest"]["rows_rejected"] == 1
    assert _q(db, "select action_id, run_id, mode from dunning_actions order by action_id") == [
        ("C1|EUR|1|due", rows[0]["run_id"], "replay"),
        ("C2|EUR|1|due", rows[0]["run_id"], "replay"),
    ]


def test_a_failing_run_is_recorded_failed_with_its_reason(small_source, tmp_path):
    from flows.nightly import nightly_run
    from relance.core.errors import UserError

    db = tmp_path / "r.duckdb"
    nightly_run(as_of="2026-03-09", source=small_source, db=str(db))  # the night before: a good load
    bad = Path(small_source) / "payments.csv"
    bad.write_bytes(b"\xff\xfe\x00p\x00a\x00y")  # not a CSV relance can read
    with pytest.raises(UserError) as err:
        nightly_run(as_of="2026-03-10", source=small_source, db=str(db))
    [good, run] = _runs(db)
    assert (good["outcome"], run["kind"], run["outcome"]) == ("completed", "nightly", "failed")
    assert run["reason"] == str(err.value) and str(bad) in run["reason"] and "\n" not in run["reason"]
    assert run["ended_at"] >= run["started_at"]
    # nothing was loaded: no counts, and not the fingerprint of the night before's staging
    # (the provider events journal is applied before the load: its counts are the only ones)
    assert set(run["step_counts"]) <= {"events"} and run["source_fingerprint"] is None


def test_a_failing_backfill_fails_each_of_its_dates(small_source, tmp_path):
    from flows.backfill import backfill_run
    from relance.core.errors import UserError

    db = tmp_path / "r.duckdb"
    (Path(small_source) / "payments.csv").write_bytes(b"\xff\xfe\x00p\x00a\x00y")
    with pytest.raises(UserError) as err:
        backfill_run("2026-03-10", "2026-03-12", small_source, db=str(db))
    rows = _runs(db)
    assert [(r["kind"], r["as_of"], r["outcome"], r["reason"]) for r in rows] == [
        ("backfill", date(2026, 3, d), "failed", str(err.value)) for d in (10, 11, 12)
    ]


def test_the_row_is_written_at_the_start(tmp_path):
    """A crashed run stays visible: its row is `running`, with no end, from the moment it starts."""
    from tasks import audit

    db = str(tmp_path / "r.duckdb")
    with pytest.raises(KeyboardInterrupt):
        with audit.audited(db, "dispatch", date(2026, 3, 10)) as run:
            [row] = _runs(db)
            assert (row["run_id"], row["outcome"], row["ended_at"]) == (run.run_id, "running", None)
            assert audit.current_run_id() == run.run_id
            raise KeyboardInterrupt
    [row] = _runs(db)
    assert (row["outcome"], row["reason"]) == ("failed", "KeyboardInterrupt: (no message)")
    assert audit.current_run_id() is None


def test_a_run_done_again_under_its_id_gets_a_suffix(tmp_path):
    """A Prefect flow run retried keeps its flow-run id: the second attempt's row is `<id>#2`, the first stays."""
    from tasks import audit

    db = str(tmp_path / "r.duckdb")
    with pytest.raises(RuntimeError):
        with audit.audited(db, "nightly", date(2026, 3, 10), run_id="flow-1"):
            raise RuntimeError("source unreachable")
    with audit.audited(db, "nightly", date(2026, 3, 10), run_id="flow-1"):
        pass
    assert [(r["run_id"], r["outcome"], r["reason"]) for r in _runs(db)] == [
        ("flow-1", "failed", "RuntimeError: source unreachable"),
        ("flow-1#2", "completed", None),
    ]


@pytest.fixture
def notices_pending(tmp_path):
    """Two debtors' formal notices made by `relance run` on Mon 03-23, waiting for approval (the
    runs before it done by the ladder's code: their actions name no run)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "C2", "2026-01-30", "450.00")],
    )
    db = tmp_path / "r.duckdb"
    run_days(src, str(db), ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19"])
    _cli("run", "--as-of", "2026-03-23", "--source", src, "--db", str(db), "--outbox", str(tmp_path / "box"))
    return db


def test_approve_and_dispatch_rows_and_the_finance_query(notices_pending, tmp_path):
    db = notices_pending
    [nightly] = _runs(db)
    assert dict(_q(db, "select action_id, run_id from dunning_actions where stage = 'formal_notice'")) == {
        A1: nightly["run_id"],
        A2: nightly["run_id"],
    }

    _cli(
        "approve",
        "--db",
        str(db),
        "--as-of",
        "2026-03-23",
        "--action",
        A1,
        "--reject",
        A2,
        "--reason",
        "disputed invoice",
        "--by",
        "julie",
    )
    [approve] = _runs(db, "kind = 'approve'")
    assert (approve["as_of"], approve["actor"], approve["outcome"]) == (date(2026, 3, 23), "julie", "completed")
    assert approve["flow_run_id"] is None and uuid.UUID(approve["run_id"])
    assert approve["policy_sha256"] is None and approve["templates_sha256"] is None  # a decision applies no rules
    # A1: a registered letter and an email planned; A2: both skipped
    assert approve["step_counts"]["approve"] == {
        "approved": 1,
        "rejected": 1,
        "deliveries_planned": 2,
        "deliveries_skipped": 2,
        "still_pending": 0,
    }
    decisions = {
        r[0]: r[1:]
        for r in _q(
            db,
            "select action_id, status, decided_by, decided_run_id, decided_at "
            "from dunning_actions where stage = 'formal_notice'",
        )
    }
    assert {a: d[:3] for a, d in decisions.items()} == {
        A1: ("approved", "julie", approve["run_id"]),
        A2: ("rejected", "julie", approve["run_id"]),
    }
    assert all(approve["started_at"] <= d[3] <= approve["ended_at"] for d in decisions.values())
    assert {r[0] for r in _q(db, "select distinct run_id from delivery_events where actor = 'approve:julie'")} == {
        approve["run_id"]
    }

    _cli("dispatch", "--db", str(db), "--as-of", "2026-03-23", "--outbox", str(tmp_path / "box"))
    [dispatch] = _runs(db, "kind = 'dispatch'")
    assert (dispatch["as_of"], dispatch["outcome"]) == (date(2026, 3, 23), "completed")
    assert dispatch["policy_sha256"] == _sha(DEFAULT_POLICY)
    assert dispatch["channels_sha256"] == _sha(TEMPLATES_DIR / "channels.yaml")
    assert dispatch["templates_sha256"] == _templates_sha()
    assert dispatch["step_counts"]["dispatch"]["totals"] == {"sent": 2}
    assert dispatch["step_counts"]["dispatch"]["by_channel"] == {"registered_letter": {"sent": 1}, "email": {"sent": 1}}

    # finance: which policy and which wording produced this letter, and who approved it
    text = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    query = re.search(r"```sql\n(-- audit: letter provenance\n.*?)```", text, re.S).group(1)
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(query, {"delivery_id": f"{A1}|registered_letter"})
        cols = [d[0] for d in cur.description]
        [answer] = [dict(zip(cols, r)) for r in cur.fetchall()]
    assert answer["status"] == "sent" and Path(answer["artifact_path"]).is_file()
    assert answer["artifact_path"].endswith(".pdf")
    assert (answer["made_by_run"], answer["made_by_kind"]) == (nightly["run_id"], "nightly")
    assert (answer["policy_path"], answer["policy_sha256"]) == (str(DEFAULT_POLICY), _sha(DEFAULT_POLICY))
    assert (answer["sent_by_run"], answer["sent_by_kind"]) == (dispatch["run_id"], "dispatch")
    assert answer["channels_sha256"] == _sha(TEMPLATES_DIR / "channels.yaml")
    assert answer["templates_sha256"] == _templates_sha()
    assert (answer["decision"], answer["decided_by"], answer["decision_reason"]) == (
        "approved",
        "julie",
        "disputed invoice",
    )
    assert (answer["decided_by_run"], answer["decided_by_kind"]) == (approve["run_id"], "approve")


def test_resolve_records_who_and_the_run(notices_pending):
    """`relance resolve` of a delivery left in doubt: its own run (kind resolve, actor the --by name), named
    by the event it writes."""
    db = notices_pending
    with duckdb.connect(str(db)) as con:  # a run stopped between the provider call and its record
        con.execute("update deliveries set status = 'in_doubt' where delivery_id = $d", {"d": f"{A1}|email"})
    _cli(
        "resolve",
        "--db",
        str(db),
        "--delivery",
        f"{A1}|email",
        "--not-sent",
        "--by",
        "marc",
        "--reason",
        "not at SendGrid",
    )
    [run] = _runs(db, "kind = 'resolve'")
    assert (run["actor"], run["outcome"], run["step_counts"]) == ("marc", "completed", {"resolve": {"not_sent": 1}})
    assert _q(db, "select actor, run_id, status from delivery_events where actor like 'resolve:%'") == [
        ("resolve:marc", run["run_id"], "planned")
    ]


def test_previous_fingerprint_is_the_last_completed_source_read_before_the_date(small_source, tmp_path):
    from flows.nightly import nightly_run
    from tasks import audit

    db = str(tmp_path / "r.duckdb")
    nightly_run(as_of="2026-03-10", source=small_source, db=db)
    # the next day's export has one more payment
    _small_source(Path(small_source), payment("P2", "C1", "2026-03-10", "100.00", invoice_id="I1"))
    # its newest invoice is of 01-02: stale by the freshness guard, which is not what this tests
    nightly_run(as_of="2026-03-11", source=small_source, db=db, allow_stale=True)
    with duckdb.connect(db) as con:
        # a later failed run and a decision do not count
        con.execute(
            "insert into runs (run_id, kind, as_of, started_at, outcome, source_fingerprint) values "
            "('x', 'nightly', '2026-03-11', now(), 'failed', '{}'), ('y', 'dispatch', '2026-03-11', now(), "
            "'completed', '{}')"
        )
        assert audit.previous_fingerprint(con, date(2026, 3, 10)) is None
        assert audit.previous_fingerprint(con, date(2026, 3, 11)) == FINGERPRINT
        assert audit.previous_fingerprint(con, date(2026, 3, 12)) == {
            **FINGERPRINT,
            "payments": {"rows": 2, "max_paid_date": "2026-03-10"},
        }


FIRST_SHAPE = """
create table runs (run_id varchar primary key, as_of date not null, mode varchar not null, source varchar,
                   started_at timestamp not null, finished_at timestamp, status varchar not null, stats json);
create table dunning_actions (action_id varchar primary key, as_of date not null, customer_id varchar not null,
    currency varchar not null, episode_id varchar not null, stage varchar not null, stage_rank integer not null,
    driving_invoice_id varchar, amount_due decimal(18,2) not null, invoice_ids varchar[] not null,
    status varchar not null, mode varchar not null, interest_amount decimal(18,2), indemnity_amount decimal(18,2),
    charges_total decimal(18,2), created_at timestamp not null, decided_by varchar, decided_at timestamp,
    decision_reason varchar);
insert into dunning_actions values ('C9|EUR|1|due', '2026-03-01', 'C9', 'EUR', 'C9|EUR|1', 'due', 2, 'I9', 10.00,
    ['I9'], 'planned', 'live', null, null, null, '2026-03-01 02:00:00', null, null, null);
"""


def test_a_warehouse_from_before_the_audit_record_is_migrated_in_place(tmp_path):
    """The tables of the first shape (runs never written, actions without run columns) take the new
    columns at the next run; the old action stays, naming no run."""
    from tasks import audit

    db = str(tmp_path / "old.duckdb")
    with duckdb.connect(db) as con:
        con.execute(FIRST_SHAPE)
    with audit.audited(db, "dispatch", date(2026, 3, 10)) as run:
        pass
    cols = {r[0] for r in _q(db, "describe runs")}
    assert {"kind", "ended_at", "outcome", "reason", "policy_sha256", "source_fingerprint", "step_counts"} <= cols
    assert not cols & {"mode", "finished_at", "status", "stats"}
    assert [(r["run_id"], r["outcome"]) for r in _runs(db)] == [(run.run_id, "completed")]
    assert _q(db, "select action_id, run_id, decided_run_id from dunning_actions") == [("C9|EUR|1|due", None, None)]


def test_the_flow_run_id_names_the_run_its_actions_and_its_decisions(prefect_server, small_source, tmp_path):
    from flows.nightly import nightly_dunning

    db = str(tmp_path / "r.duckdb")
    state = nightly_dunning(
        as_of=date(2026, 3, 10),
        source=small_source,
        db=db,
        outbox=str(tmp_path / "box"),
        report_dir=str(tmp_path / "reports"),
        auto_approve=True,
        return_state=True,
    )
    assert state.is_completed(), state
    flow_run_id = str(state.state_details.flow_run_id)
    [run] = _runs(db)
    assert (run["run_id"], run["flow_run_id"], run["kind"], run["outcome"]) == (
        flow_run_id,
        flow_run_id,
        "nightly",
        "completed",
    )
    assert state.result()["run_id"] == flow_run_id
    assert run["step_counts"]["escalate"]["actions"] == 2 and run["source_fingerprint"] == FINGERPRINT
    assert {r[0] for r in _q(db, "select run_id from dunning_actions")} == {flow_run_id}
    # the deliveries were sent by this run (its dispatch task, in the flow run)
    assert {r[0] for r in _q(db, "select run_id from delivery_events where status = 'sent'")} == {flow_run_id}


def _pending_source(tmp_path) -> tuple[str, str]:
    """The runs before Mon 03-23, when both debtors' formal notices come (done by the ladder's code)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "C2", "2026-01-30", "450.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19"])
    return src, db


def test_auto_approve_names_the_nightly_run(tmp_path):
    src, db = _pending_source(tmp_path)
    _cli(
        "run", "--as-of", "2026-03-23", "--source", src, "--db", db, "--outbox", str(tmp_path / "box"), "--auto-approve"
    )
    [run] = _runs(db)
    assert sorted(
        _q(
            db,
            "select action_id, run_id, decided_by, decided_run_id from dunning_actions where stage = 'formal_notice'",
        )
    ) == [(A1, run["run_id"], "auto-approve", run["run_id"]), (A2, run["run_id"], "auto-approve", run["run_id"])]


def test_the_approval_in_the_prefect_ui_is_a_run_of_its_own(prefect_server, tmp_path, monkeypatch):
    """The decision typed in the paused flow run: a row `<flow run id>/approve` (kind approve, actor the
    form's `by`), named by the actions it decided; the nightly row is the flow run's."""
    import threading
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from flows.nightly import nightly_dunning

    monkeypatch.setenv("RELANCE_APPROVAL_POLL_S", "1")
    src, db = _pending_source(tmp_path)
    box: dict = {}

    def run():
        box["state"] = nightly_dunning(
            as_of=date(2026, 3, 23),
            source=src,
            db=db,
            outbox=str(tmp_path / "box"),
            report_dir=str(tmp_path / "reports"),
            approval_timeout_hours=0.05,
            return_state=True,
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    paused, deadline = None, time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while paused is None and time.monotonic() < deadline:
            found = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=["nightly-2026-03-23"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                )
            )
            paused = found[0] if found else time.sleep(0.5)
    assert paused is not None, "the flow run did not pause for the approval"
    # while it waits, its row is there, running
    [running] = _runs(db)
    assert (running["run_id"], running["outcome"]) == (str(paused.id), "running")
    resume_flow_run(paused.id, run_input={"approve": [A1], "reject": [A2], "reason": "disputed", "by": "julie"})
    thread.join(180)
    assert box["state"].is_completed(), box["state"]
    flow_run_id = str(paused.id)
    rows = {r["run_id"]: r for r in _runs(db)}
    assert set(rows) == {flow_run_id, f"{flow_run_id}/approve"}
    nightly, decision = rows[flow_run_id], rows[f"{flow_run_id}/approve"]
    assert (nightly["kind"], nightly["outcome"], nightly["flow_run_id"]) == ("nightly", "completed", flow_run_id)
    assert (decision["kind"], decision["outcome"], decision["flow_run_id"], decision["actor"]) == (
        "approve",
        "completed",
        flow_run_id,
        "julie (prefect-ui)",
    )
    assert nightly["started_at"] <= decision["started_at"] <= decision["ended_at"] <= nightly["ended_at"]
    assert sorted(
        _q(
            db,
            "select action_id, run_id, status, decided_by, decided_run_id from dunning_actions "
            "where stage = 'formal_notice'",
        )
    ) == [
        (A1, flow_run_id, "approved", "julie (prefect-ui)", f"{flow_run_id}/approve"),
        (A2, flow_run_id, "rejected", "julie (prefect-ui)", f"{flow_run_id}/approve"),
    ]
    # the approved letter was sent by the nightly run's dispatch, after the decision
    assert _q(
        db,
        "select run_id from delivery_events where delivery_id = $d and status = 'sent'",
        {"d": f"{A1}|registered_letter"},
    ) == [(flow_run_id,)]
