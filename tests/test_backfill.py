"""`relance backfill`: each date in order in replay mode, idempotent, taking real actions as the
ladder's state and never touching what was sent. Worked by hand from the contract (§3, §4).

I1 800.00 due Fri 2026-01-30 (+38 on Mon 03-09): the ladder from `due` (preventive passed over),
3 days apart, weekdays only.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from typer.testing import CliRunner

from flows.backfill import backfill_run
from relance.core.errors import UserError
from tests.ladder_helpers import (
    LADDER_TABLES,
    actions,
    customer,
    deliveries,
    invoice,
    query,
    run_nightly,
    table_rows,
    unit,
    write_source,
)


def _source(tmp_path):
    return write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("NOTHING", email="", phone="", street="", postal_code="", city="")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "NOTHING", "2026-01-30", "800.00")],
    )


def test_replay_simulates_the_ladder_and_takes_approvals_as_given(tmp_path):
    """I1 is due 01-30, so at 03-09 (dpd 38) the target is already formal_notice: one step a run,
    3 days apart, business days only: due Mon 03-09 (preventive passed over), call_1 Thu 03-12,
    reminder_2 Mon 03-16 (Sun 03-15), call_2 Thu 03-19, formal_notice Mon 03-23 (Sun 03-22).
    A replay takes the notice's approval as given on the day (as --auto-approve does), so the unit
    goes on: amicable Thu 03-26 (dpd 55 ≥ 45), litigation Tue 03-31 (dpd 60 ≥ 60, 800.00 ≥ 500).
    NOTHING (no email, no address) has a notice that goes out on no channel: no formal notice would
    have been sent, so the replay, like the nightly, takes nothing after it."""
    src, db = _source(tmp_path), str(tmp_path / "r.duckdb")
    summary = backfill_run("2026-03-09", "2026-03-31", src, db)
    expected = [
        ("2026-03-09", "due"),
        ("2026-03-12", "call_1"),
        ("2026-03-16", "reminder_2"),
        ("2026-03-19", "call_2"),
        ("2026-03-23", "formal_notice"),
        ("2026-03-26", "amicable"),
        ("2026-03-31", "litigation"),
    ]
    assert [(a[0], a[4]) for a in actions(db, "C1")] == expected
    assert [(a[0], a[4]) for a in actions(db, "NOTHING")] == expected[:5]
    assert unit(db, "2026-03-31", "NOTHING")["no_action_reason"] == "formal_notice_not_sent"
    assert {a[7] for a in actions(db)} == {"simulated"}
    assert query(db, "select distinct mode from dunning_actions") == [("replay",)]
    assert {d[2] for d in deliveries(db) if d[0].startswith("C1|")} == {"simulated"}
    # contact facts hold in a replay too
    assert deliveries(db, "NOTHING|EUR|1|due") == [
        (
            "NOTHING|EUR|1|due|letter",
            "letter",
            "undeliverable",
            "email",
            "no postal address (street and city) for a letter, the fallback for email",
        )
    ]
    assert unit(db, "2026-03-24", "C1")["no_action_reason"] == "min_gap"
    assert summary["replay"]["days"] == 23 and summary["replay"]["actions"] == 12
    assert query(db, "select count(distinct as_of) from unit_stage") == [(23,)]


def test_backfill_takes_real_actions_as_its_state_and_never_touches_sent_ones(tmp_path):
    """Real nightly runs on 03-10 (due) and 03-13 (call_1); the due email was sent. A backfill of
    03-09..03-16 adds no simulated twin of them: it goes on from call_1 with reminder_2 on Mon
    03-16. Running it again changes nothing."""
    src, db = _source(tmp_path), str(tmp_path / "r.duckdb")
    run_nightly(src, db, "2026-03-10")
    run_nightly(src, db, "2026-03-13")
    with duckdb.connect(db) as con:
        con.execute(
            "update deliveries set status = 'sent', provider = 'outbox', provider_message_id = 'm-1', attempts = 1, "
            "sent_at = timestamp '2026-03-10 21:00:00' where delivery_id = 'C1|EUR|1|due|email'"
        )
    sent = query(db, "select * from deliveries where delivery_id = 'C1|EUR|1|due|email'")

    backfill_run("2026-03-09", "2026-03-16", src, db)
    assert [(a[0], a[4], a[7]) for a in actions(db, "C1")] == [
        ("2026-03-10", "due", "planned"),
        ("2026-03-13", "call_1", "planned"),
        ("2026-03-16", "reminder_2", "simulated"),
    ]
    assert query(db, "select * from deliveries where delivery_id = 'C1|EUR|1|due|email'") == sent
    assert unit(db, "2026-03-09", "C1")["no_action_reason"] == "already_actioned"  # its step is the real one of 03-10

    before = {t: table_rows(db, t) for t in LADDER_TABLES}
    summary = backfill_run("2026-03-09", "2026-03-16", src, db)
    assert {t: table_rows(db, t) for t in LADDER_TABLES} == before
    assert summary["replay"]["actions"] == 0


def test_replay_measures_each_day_from_the_snapshots_it_aged(tmp_path, monkeypatch):
    """Each replayed day's metrics read the point-in-time views of the days this replay has aged so
    far (that day included: age runs before measure), and only those; the rows are the same as a
    measure that allocates every date again (what a nightly `relance measure` does)."""
    import flows.backfill as bf
    from tasks.measure import measure

    src, db = _source(tmp_path), str(tmp_path / "r.duckdb")
    seen = []
    real = bf.measure_on

    def spy(con, day, pol, snapshot_dates=None, run_id=None):
        seen.append((day, list(snapshot_dates)))
        return real(con, day, pol, snapshot_dates=snapshot_dates, run_id=run_id)

    monkeypatch.setattr(bf, "measure_on", spy)
    backfill_run("2026-03-09", "2026-03-12", src, db)
    assert seen == [
        (date(2026, 3, 9), [date(2026, 3, 9)]),
        (date(2026, 3, 10), [date(2026, 3, 9), date(2026, 3, 10)]),
        (date(2026, 3, 11), [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 11)]),
        (date(2026, 3, 12), [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)]),
    ]
    sql = "select * from recovery_metrics where as_of = '2026-03-12' order by all"
    replayed = query(db, sql)
    measure(db, date(2026, 3, 12))
    assert query(db, sql) == replayed and replayed


def test_backfill_rejects_an_inverted_range(tmp_path):
    with pytest.raises(UserError, match="before start"):
        backfill_run("2026-03-10", "2026-03-01", str(tmp_path / "src"), str(tmp_path / "r.duckdb"))


def test_cli_backfill_twice(tmp_path):
    from relance.cli import app

    src, db = _source(tmp_path), tmp_path / "r.duckdb"
    args = ["backfill", "--start", "2026-03-09", "--end", "2026-03-13", "--source", src, "--db", str(db)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "5 days" in first.output and "4 simulated actions (2 due, 2 call_1)" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "0 simulated actions" in second.output
    bad = CliRunner().invoke(
        app, ["backfill", "--start", "2026-03-09", "--end", "2026-13-01", "--source", src, "--db", str(db)]
    )
    assert bad.exit_code != 0


def test_progress_bar_and_prefect_artifact(tmp_path, monkeypatch):
    """On a terminal a progress bar; inside a flow run a progress artifact, updated to 100 %."""
    import io

    import flows.backfill as bf

    calls = []
    monkeypatch.setattr(bf, "in_flow_run", lambda: True)
    monkeypatch.setattr(
        "prefect.artifacts.create_progress_artifact",
        lambda progress, key=None, description=None: calls.append(("create", progress, key)) or "A1",
    )
    monkeypatch.setattr(
        "prefect.artifacts.update_progress_artifact",
        lambda artifact_id, progress, description=None: calls.append(("update", artifact_id, progress)),
    )

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    p = bf._Progress(3, "backfill")
    for n in range(3):
        p.advance(date(2026, 3, 9 + n))
    p.close()
    assert calls[0] == ("create", 0.0, "backfill-progress")
    assert calls[-1] == ("update", "A1", 100.0)
    assert "3/3" in __import__("sys").stderr.getvalue()


def test_backfill_flow_is_the_same_function_with_the_cli_names():
    import inspect

    from flows.backfill import backfill

    assert backfill.name == "backfill"
    assert list(inspect.signature(backfill.fn).parameters) == [
        "start",
        "end",
        "source",
        "db",
        "policy",
        "source_schema",
        "metrics_target",
        "report_dir",
        "language",
        "fleet_root",
        "shard",
    ]


def test_the_outage_week_replayed_never_gives_the_live_ladder_a_step(tmp_path):
    """Issue 12 §1 through the real flows: nightly runs (with the dispatch into the outbox) on
    Mon 03-16, Thu 03-19, Tue 03-24 for I1 1000.00 due Fri 02-13: due, call_1, reminder_2. The
    outage week is backfilled (03-25..03-31): call_2 (Fri 03-27) and formal_notice (Mon 03-30)
    simulated. The next nightly run, Thu 04-02, goes on from the last real step: call_2 for real
    (it takes the place of the simulated call_2), not a visit; the simulated formal notice stays
    as the history of 03-30, and the run's summary says it was not taken as a step."""
    from relance.cli import format_backfill_summary, format_summary

    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-02-13", "1000.00")]
    )
    db = str(tmp_path / "r.duckdb")
    for d in ("2026-03-16", "2026-03-19", "2026-03-24"):
        run_nightly(src, db, d)
    back = backfill_run("2026-03-25", "2026-03-31", src, db)
    assert back["replay"]["actions_by_stage"] == {"call_2": 1, "formal_notice": 1}
    assert "never a step for a live run" in format_backfill_summary(back)
    [live] = run_nightly(src, db, "2026-04-02")
    assert [(a[0], a[4], a[7]) for a in actions(db)] == [
        ("2026-03-16", "due", "planned"),
        ("2026-03-19", "call_1", "planned"),
        ("2026-03-24", "reminder_2", "planned"),
        ("2026-03-30", "formal_notice", "simulated"),
        ("2026-04-02", "call_2", "planned"),
    ]
    assert query(db, "select status from deliveries where delivery_id = 'C1|EUR|1|call_2|phone'") == [("sent",)]
    assert live["escalate"]["actions_by_stage"] == {"call_2": 1}
    assert (
        "  replay:   1 simulated actions (backfill) in open episodes are history only (report, metrics): "
        "the ladder goes on from the last real step"
    ) in format_summary(live).splitlines()
