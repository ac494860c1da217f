"""Approval in the Prefect UI: a nightly flow run pauses for typed input when formal notices wait
for approval; resumed with input it records the decision and sends what was approved; without an
answer it completes and the notices stay pending. Also: one run per DuckDB file (the concurrency
limit). Driven through the Prefect client on the session's test server."""

from __future__ import annotations

import threading
import time
from datetime import date

import duckdb
import pytest

from tests.ladder_helpers import customer, invoice, run_days, write_source

AS_OF = date(2026, 3, 23)
A1, A2 = "C1|EUR|1|formal_notice", "C2|EUR|1|formal_notice"


@pytest.fixture
def night_before(tmp_path):
    """Two debtors whose formal notice comes on Mon 03-23 (the runs before it done by the CLI code)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "C2", "2026-01-30", "450.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19"])
    return src, db


def _start(src, db, tmp_path, **params):
    from flows.nightly import nightly_dunning

    box: dict = {}

    def run():
        box["state"] = nightly_dunning(
            as_of=AS_OF,
            source=src,
            db=db,
            outbox=str(tmp_path / "outbox"),
            report_dir=str(tmp_path / "reports"),
            return_state=True,
            **params,
        )

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _wait_for(check, what: str, timeout: float = 90, every: float = 0.5):
    """Poll check() until it returns something true, and return that; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def _flow_run(name: str, state_type):
    """The flow run called name in that state (a StateType), with its log messages so far; else None."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state_type])),
            )
        )
        if not runs:
            return None
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
        return runs[0], [log.message for log in logs]


def _wait_paused(name: str, timeout: float = 90):
    from prefect.client.schemas.objects import StateType

    run, _ = _wait_for(lambda: _flow_run(name, StateType.PAUSED), f"a paused flow run {name}", timeout)
    return run


def _rows(db, sql, params=None):
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def test_paused_run_resumed_with_input_sends_what_was_approved(prefect_server, night_before, tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setenv("RELANCE_APPROVAL_POLL_S", "1")
    src, db = night_before
    thread, box = _start(src, db, tmp_path, approval_timeout_hours=0.05)
    paused = _wait_paused("nightly-2026-03-23")
    # the artifact lists both notices with their invoices and sums (ids and amounts, no names)
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[paused.id]))
        )
    md = next(a for a in arts if a.key == "relance-approvals").data
    assert A1 in md and A2 in md and "I1" in md and "800,00 €" in md.replace("\u202f", " ").replace("\xa0", " ")
    assert "Client C1" not in md and "@example.com" not in md
    # the two registered letters, as drafts to read before deciding (marked not sent)
    drafts = sorted((tmp_path / "outbox" / "2026-03-23" / "drafts").glob("*.pdf"))
    assert len(drafts) == 2 and all(f"`{p}`" in md for p in drafts)
    resume_flow_run(paused.id, run_input={"approve": [A1], "reject": [A2], "reason": "disputed invoice", "by": "julie"})
    thread.join(120)
    state = box["state"]
    assert state.is_completed(), state
    summary = state.result()
    assert summary["approval"]["approved"] == [A1] and summary["approval"]["rejected"] == [A2]
    actions = dict(_rows(db, "select action_id, status from dunning_actions where stage = 'formal_notice'"))
    assert actions == {A1: "approved", A2: "rejected"}
    assert _rows(db, "select decided_by, decision_reason from dunning_actions where action_id = $a", {"a": A2}) == [
        ("julie (prefect-ui)", "disputed invoice")
    ]
    dels = dict(
        _rows(
            db,
            "select channel || ':' || action_id, status from deliveries where action_id in ($a, $b)",
            {"a": A1, "b": A2},
        )
    )
    assert dels == {
        f"registered_letter:{A1}": "sent",
        f"email:{A1}": "sent",
        f"registered_letter:{A2}": "skipped",
        f"email:{A2}": "skipped",
    }
    assert list((tmp_path / "outbox" / "2026-03-23" / "registered_letter").glob("*.pdf"))


def test_no_answer_before_the_timeout_completes_and_leaves_the_notices_pending(
    prefect_server, night_before, tmp_path, monkeypatch
):
    monkeypatch.setenv("RELANCE_APPROVAL_POLL_S", "1")
    src, db = night_before
    thread, box = _start(src, db, tmp_path, approval_timeout_hours=3 / 3600)
    thread.join(120)
    state = box["state"]
    assert state.is_completed(), state
    summary = state.result()
    assert summary["approval"] == {"asked": True, "pending": 2, "answered": False}
    from prefect import get_client

    with get_client(sync_client=True) as client:  # the server agrees: the run went on and completed
        assert client.read_flow_run(state.state_details.flow_run_id).state.is_completed()
    assert {
        s for (s,) in _rows(db, "select status from deliveries where action_id in ($a, $b)", {"a": A1, "b": A2})
    } == {"pending_approval"}
    # the next step: `relance approve` (the same code) approves them for the next run
    from tasks.dispatch import approve

    assert approve(db, AS_OF, approve_all=True, by="marc")["approved"] == [A1, A2]


def test_a_second_run_on_the_same_database_waits_for_the_first(prefect_server, night_before, tmp_path):
    """The database's concurrency slot is held (as by a running flow): the run waits, then goes."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.concurrency.sync import concurrency

    from tasks.locking import limit_name

    src, db = night_before
    name = limit_name(db)
    assert name.startswith("relance-db-") and name == limit_name(str(tmp_path / "." / "r.duckdb"))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, strict=True):
        thread, box = _start(src, db, tmp_path, auto_approve=True)

        # the run is at the slot (its log says so, shipped to the API within a few seconds) and stays there
        def waiting():
            found = _flow_run("nightly-2026-03-23", StateType.RUNNING)
            return found if found and any("waiting for its concurrency slot" in m for m in found[1]) else None

        run, messages = _wait_for(waiting, "the run waiting for the database's slot")
        assert not any("taken after" in m for m in messages)
        assert thread.is_alive() and "state" not in box
        assert len(_rows(db, "select * from dunning_actions where as_of = $d", {"d": AS_OF})) == 0
    thread.join(120)
    assert box["state"].is_completed()
    assert len(_rows(db, "select * from dunning_actions where as_of = $d", {"d": AS_OF})) == 2
