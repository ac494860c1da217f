"""Outcomes (issue 14): what collectors record — promises, plans, disputes — and how the ladder answers.

The expected actions are worked by hand from docs/policy.md (default policy: due 0, call_1 +8,
reminder_2 +20, call_2 +25, formal_notice +30; min_gap 3 days; French business days; March 2026
has no public holiday) and the outcome rules (promise grace 3 days, instalment grace 3 days).
"""

from __future__ import annotations

import csv
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from relance.core.errors import UserError
from tasks import outcomes
from tests.ladder_helpers import (
    actions,
    customer,
    days,
    hold,
    invoice,
    payment,
    query,
    run_days,
    unit,
    write_source,
)


def _run(source_dir, db, start, end, recorded: dict[str, list[dict]]):
    """Ingest once, then for each day: record that day's outcomes (before the night's run, as a
    collector does during the day), then run the ladder for the day."""
    from tasks.ingest import ingest

    ingest(source_dir, db, date.fromisoformat(end))
    for d in days(start, end):
        for fields in recorded.get(d.isoformat(), []):
            record = outcomes.resolve if "resolution" in fields else outcomes.add
            record(db, {"on": d.isoformat(), "by": "julie", **fields}, today=d)
        run_days(None, db, [d])


def _steps(db, cust):
    return [(a[0], a[4], str(a[5]), list(a[6])) for a in actions(db, cust)]


def _status(db, as_of: str, kind: str, cust: str):
    from relance.core.policy import load_policy  # noqa: F401  (the models read only the tables)

    con = duckdb.connect(db)
    try:
        from tasks import warehouse

        warehouse.run_model(con, "intermediate/int_outcome_status", {"as_of": date.fromisoformat(as_of)})
        return [
            r[0]
            for r in con.execute(
                "select status from int_outcome_status where kind = $k and customer_id = $c order by said_on",
                {"k": kind, "c": cust},
            ).fetchall()
        ]
    finally:
        con.close()


def _id(con, kind):
    return con.execute("select outcome_id from outcomes where kind = ?", [kind]).fetchone()[0]


@pytest.fixture
def scenario(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2"), customer("C3")],
        invoices=[
            invoice("F1", "C1", "2026-02-20", "1000.00"),
            invoice("G1", "C2", "2026-02-20", "500.00"),
            invoice("G2", "C2", "2026-02-27", "300.00"),
            invoice("H1", "C3", "2026-02-25", "200.00"),
            # the credit note the dispute's resolution expected, issued on 03-24
            invoice("AV1", "C2", "2026-03-24", "100.00", issue="2026-03-24", kind="credit_note"),
        ],
        # the plan's first instalment (400.00 by 03-25, grace to 03-28) is paid only in part
        payments=[
            payment("P1", "C1", "2026-03-26", "300.00", invoice_id="F1"),
            # C3 keeps its promise (200.00 by 03-10, paid on 03-09)
            payment("P2", "C3", "2026-03-09", "200.00"),
        ],
    )
    return src, str(tmp_path / "w.duckdb")


def test_thirty_days_promise_broken_plan_missed_and_dispute_resolved(scenario):
    src, db = scenario
    _run(
        src,
        db,
        "2026-03-02",
        "2026-03-31",
        {
            # C1: called on 03-06 (call_1 of 03-05): promises 1000.00 by Friday 03-13 → held to 03-16
            "2026-03-06": [
                {"customer": "C1", "kind": "promise", "amount": "1000.00", "date": "2026-03-13"},
                # C2: disputes G1 (quantity): only G1 is held
                {
                    "customer": "C2",
                    "kind": "dispute",
                    "invoices": "G1",
                    "reason": "quantity",
                    "note": "12 pallets delivered, 10 ordered",
                },
                {"customer": "C3", "kind": "promise", "amount": "200.00", "date": "2026-03-10", "by": "marc"},
            ],
            # C2: finance accepts the dispute: a credit note will come
            "2026-03-20": [{"customer": "C2", "resolution": "credit_note_expected"}],
            # C1: called on 03-23 (call_2 of 03-20): a plan for F1, 400.00 on 03-25 and 600.00 on 04-01
            "2026-03-23": [
                {
                    "customer": "C1",
                    "kind": "plan",
                    "invoices": "F1",
                    "instalments": "2026-03-25:400.00,2026-04-01:600.00",
                }
            ],
        },
    )
    # C1: due, call_1; held 03-06..03-16 by the promise; broken (nothing paid by 03-16): on Tuesday
    # 03-17 the ladder resumes at the NEXT stage (reminder_2, not due again); call_2 on 03-20; the
    # plan holds F1 from 03-23 (the formal notice that was due that day waits); 300.00 paid of the
    # 400.00 due by 03-25 (+3 days grace: 03-28) breaks the plan on Sunday 03-29; Monday 03-30 the
    # next stage, the formal notice, claims what is left: 700.00.
    assert _steps(db, "C1") == [
        ("2026-03-02", "due", "1000.00", ["F1"]),
        ("2026-03-05", "call_1", "1000.00", ["F1"]),
        ("2026-03-17", "reminder_2", "1000.00", ["F1"]),
        ("2026-03-20", "call_2", "1000.00", ["F1"]),
        ("2026-03-30", "formal_notice", "700.00", ["F1"]),
    ]
    assert [a[7] for a in actions(db, "C1")][-1] == "pending_approval"
    held = unit(db, "2026-03-10", "C1")
    assert (held["held"], held["hold_reason"], held["no_action_reason"]) == (True, "promise", "held")
    plan_held = unit(db, "2026-03-23", "C1")
    assert (plan_held["held"], plan_held["hold_reason"], plan_held["current_stage"]) == (True, "payment_plan", "call_2")
    assert unit(db, "2026-03-29", "C1")["held"] is False  # broken: no longer held (a Sunday: no step)
    assert _status(db, "2026-03-16", "promise", "C1") == ["pending"]
    assert _status(db, "2026-03-17", "promise", "C1") == ["broken"]
    assert _status(db, "2026-03-28", "plan", "C1") == ["on_track"]
    assert _status(db, "2026-03-29", "plan", "C1") == ["broken"]
    # one episode throughout: the ladder never restarted from the bottom
    assert {a[3] for a in actions(db, "C1")} == {"C1|EUR|1"}

    # C2: due and call_1 claim both invoices; the dispute holds only G1: reminder_2 on 03-19 (G2 20
    # days late) claims G2 alone; resolved 03-20 "credit note expected": G1 stays held until the
    # credit note (100.00, 03-24) arrives; it settles G1 (the oldest) to 400.00 and the ladder goes
    # on with call_2 on 03-24 (G1 and G2: 700.00), then the formal notice on 03-27.
    assert _steps(db, "C2") == [
        ("2026-03-02", "due", "800.00", ["G1", "G2"]),
        ("2026-03-05", "call_1", "800.00", ["G1", "G2"]),
        ("2026-03-19", "reminder_2", "300.00", ["G2"]),
        ("2026-03-24", "call_2", "700.00", ["G1", "G2"]),
        ("2026-03-27", "formal_notice", "700.00", ["G1", "G2"]),
    ]
    assert {a[3] for a in actions(db, "C2")} == {"C2|EUR|1"}
    assert _status(db, "2026-03-23", "dispute", "C2") == ["credit_note_expected"]
    assert _status(db, "2026-03-24", "dispute", "C2") == ["resolved"]
    assert unit(db, "2026-03-23", "C2")["held_invoices"] == 1

    # the metrics of 03-31 (docs/metrics.md "What debtors said"): promises due in (03-01, 03-31):
    # C1's (1000.00, broken, julie) and C3's (200.00, kept, marc)
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.measure import measure_on

    with warehouse.open_db(db) as con:
        measure_on(con, date(2026, 3, 31), load_policy(None))
        # the models' YAML tests hold with outcome holds (keys, accepted kinds), e.g. on 03-23
        # (the plan holds F1, the dispute G1)
        day = date(2026, 3, 23)
        warehouse.build(con, ["intermediate/int_active_holds"], {"as_of": day})
        assert warehouse.check_model(con, "intermediate/int_active_holds", {"as_of": day}) == []
        assert con.execute("select hold_id, invoice_id, kind, origin from int_active_holds order by 2").fetchall() == [
            (f"{_id(con, 'plan')}|F1", "F1", "payment_plan", "outcome"),
            (f"{_id(con, 'dispute')}|G1", "G1", "dispute", "outcome"),
        ]
    got = {
        (m, dim, val): str(v)
        for m, dim, val, v in query(
            db,
            "select metric, dimension, dimension_value, value from recovery_metrics "
            "where as_of = '2026-03-31' and currency = 'EUR' and (metric like 'promise%' or metric in "
            "('disputes_open', 'plans', 'outcomes_30d'))",
        )
    }
    assert got == {
        ("promise_kept_rate_30d", "all", "all"): "50.0000",
        ("promise_kept_rate_30d", "collector", "julie"): "0.0000",
        ("promise_kept_rate_30d", "collector", "marc"): "100.0000",
        ("promise_kept_amount_rate_30d", "all", "all"): "16.6667",
        ("promises_broken_30d", "all", "all"): "1.0000",
        ("promises_broken_30d", "collector", "julie"): "1.0000",
        ("plans", "status", "broken"): "1.0000",
        ("outcomes_30d", "kind", "promise"): "2.0000",
        ("outcomes_30d", "kind", "dispute"): "1.0000",
        ("outcomes_30d", "kind", "plan"): "1.0000",
        ("outcomes_30d", "collector", "julie"): "3.0000",
        ("outcomes_30d", "collector", "marc"): "1.0000",
        # recorded from the CLI, naming no call or visit: no stage
        ("outcomes_30d", "stage", "none"): "4.0000",
        ("outcomes_30d", "collector_stage", "julie:none"): "3.0000",
        ("outcomes_30d", "collector_stage", "marc:none"): "1.0000",
    }


def test_dispute_resolution_from_the_cli_rules(scenario, tmp_path):
    src, db = scenario
    from tasks.ingest import ingest

    ingest(src, db, date(2026, 3, 31))
    res = outcomes.add(
        db,
        {"customer": "C2", "kind": "dispute", "invoices": "G1", "reason": "price", "on": "2026-03-06"},
        today=date(2026, 3, 6),
    )
    with pytest.raises(UserError, match="resolution 'maybe' is not one of credit_note_expected, rejected, paid"):
        outcomes.resolve(db, {"customer": "C2", "resolution": "maybe"}, today=date(2026, 3, 9))
    with pytest.raises(UserError, match="before the dispute"):
        outcomes.resolve(
            db, {"dispute": res["outcome_id"], "resolution": "rejected", "on": "2026-03-05"}, today=date(2026, 3, 9)
        )
    r = outcomes.resolve(db, {"customer": "C2", "resolution": "rejected", "on": "2026-03-09"}, today=date(2026, 3, 9))
    assert r["dispute"] == res["outcome_id"] and r["recorded"] == 1
    with pytest.raises(UserError, match="0 open disputes"):
        outcomes.resolve(db, {"customer": "C2", "resolution": "paid"}, today=date(2026, 3, 10))
    assert _status(db, "2026-03-08", "dispute", "C2") == ["open"]
    assert _status(db, "2026-03-09", "dispute", "C2") == ["resolved"]


# -- the rule set and the CLI ------------------------------------------------------------------------


@pytest.fixture
def loaded(scenario):
    src, db = scenario
    from tasks.ingest import ingest

    ingest(src, db, date(2026, 3, 31))
    return db


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"customer": "C9", "kind": "reached"}, "customer 'C9' is not a known customer"),
        ({"customer": "C1", "kind": "maybe"}, "outcome 'maybe' is not one of reached, no_answer"),
        (
            {"customer": "C1", "kind": "promise", "amount": "500,00", "date": "2026-03-20"},
            "write the decimals after a '.' (500.00)",
        ),
        ({"customer": "C1", "kind": "promise", "amount": "500.00"}, "a promise needs the date promised"),
        ({"customer": "C1", "kind": "promise", "amount": "-5", "date": "2026-03-20"}, "is not an amount like 500.00"),
        (
            {"customer": "C1", "kind": "promise", "amount": "5.00", "date": "2026-02-30"},
            "'2026-02-30' is not a real date",
        ),
        ({"customer": "C1", "kind": "promise", "amount": "5.00", "date": "2026-03-01"}, "before the day it was said"),
        (
            {
                "customer": "C1",
                "kind": "plan",
                "amount": "1000.00",
                "instalments": "2026-03-25:400.00,2026-04-01:500.00",
            },
            "the instalments sum to 900.00, not the plan's amount 1000.00",
        ),
        (
            {"customer": "C1", "kind": "plan", "instalments": "2026-04-01:400.00,2026-03-25:600.00"},
            "dates must increase",
        ),
        (
            {"customer": "C1", "kind": "dispute", "invoices": "F1", "reason": "mood"},
            "reason 'mood' is not one of price, quantity",
        ),
        (
            {"customer": "C1", "kind": "dispute", "invoices": "G1", "reason": "price"},
            "invoice G1 belongs to customer C2, not C1",
        ),
        ({"customer": "C1", "kind": "reached", "amount": "10.00"}, "an amount means nothing for outcome reached"),
        ({"customer": "C1", "kind": "reached", "on": "2026-03-12"}, "is after today (2026-03-10)"),
    ],
)
def test_rejects_with_a_reason(loaded, fields, reason):
    with pytest.raises(UserError, match=None) as e:
        outcomes.add(loaded, fields, today=date(2026, 3, 10))
    assert reason in str(e.value)
    assert query(loaded, "select count(*) from outcomes")[0][0] == 0


def test_add_is_idempotent_and_wrong_number_marks_the_phone_bad(loaded):
    a = outcomes.add(
        loaded,
        {"customer": "C1", "kind": "promise", "amount": "250", "date": "2026-03-20", "by": "julie"},
        today=date(2026, 3, 10),
    )
    b = outcomes.add(
        loaded,
        {"customer": "C1", "kind": "promise", "amount": "250.00", "date": "2026-03-20", "by": "marc"},
        today=date(2026, 3, 10),
    )
    assert (a["outcome_id"], a["recorded"], b["recorded"]) == (b["outcome_id"], 1, 0)
    assert a["hold_until"] == date(2026, 3, 23)
    row = query(
        loaded, "select currency, amount, promised_date, hold_until, recorded_by, said_on, source from outcomes"
    )
    assert [tuple(map(str, r)) for r in row] == [
        ("EUR", "250.00", "2026-03-20", "2026-03-23", "julie", "2026-03-10", "cli")
    ]
    outcomes.add(loaded, {"customer": "C2", "kind": "wrong_number"}, today=date(2026, 3, 10))
    flags = query(loaded, "select customer_id, channel, address, flag from contact_flags")
    assert flags == [("C2", "phone", "+33612345678", "bad")]


def _worklist(path: Path, rows: list[dict]) -> Path:
    from tasks.dispatch.worklists import CSV_COLUMNS

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    "rank": 1,
                    "priority": "10.00",
                    "collector": "julie",
                    "currency": "EUR",
                    "script": "Bonjour,\nje vous appelle…",
                    **r,
                }
            )
    return path


def test_import_all_or_nothing_with_row_numbers_and_idempotent(loaded, tmp_path):
    good = _worklist(
        tmp_path / "worklist-julie.csv",
        [
            {
                "customer_id": "C1",
                "outcome": "promise",
                "outcome_amount": "1000.00",
                "outcome_date": "2026-03-13",
                "outcome_on": "2026-03-06",
                "action_id": "C1|EUR|1|call_1",
            },
            {"customer_id": "C2", "outcome": ""},  # not reached yet: nothing to record
            {
                "customer_id": "C2",
                "outcome": "dispute",
                "outcome_invoices": "G1",
                "outcome_reason": "quality",
                "outcome_note": "=cmd|' /C calc'!A0",
                "outcome_on": "2026-03-06",
            },
        ],
    )
    bad = _worklist(
        tmp_path / "worklist-bad.csv",
        [
            {"customer_id": "C1", "outcome": "reached", "outcome_on": "2026-03-06"},
            {"customer_id": "C1", "outcome": "promise", "outcome_amount": "abc", "outcome_date": "2026-03-13"},
            {"customer_id": "C7", "outcome": "reached"},
        ],
    )
    with pytest.raises(UserError) as e:
        outcomes.import_file(loaded, bad, today=date(2026, 3, 10))
    msg = str(e.value)
    # the script spans two lines but stays in its one row: rows 3 and 4 (header = 1)
    assert "nothing imported, 2 row(s) to fix" in msg
    assert "row 3: amount 'abc' is not an amount" in msg and "row 4: customer 'C7' is not a known customer" in msg
    assert query(loaded, "select count(*) from outcomes")[0][0] == 0  # never half-applied

    first = outcomes.import_file(loaded, good, today=date(2026, 3, 10))
    assert (first["recorded"], first["already_recorded"], first["rows_without_outcome"]) == (2, 0, 1)
    before = query(loaded, "select * from outcomes order by outcome_id")
    again = outcomes.import_file(loaded, good, today=date(2026, 3, 11))
    assert (again["recorded"], again["already_recorded"]) == (0, 2)
    assert query(loaded, "select * from outcomes order by outcome_id") == before
    rows = query(loaded, "select kind, recorded_by, source_row, action_id, note from outcomes order by source_row")
    assert rows == [
        ("promise", "julie", 2, "C1|EUR|1|call_1", None),
        ("dispute", "julie", 4, None, "=cmd|' /C calc'!A0"),
    ]


def test_cli_add_import_resolve(loaded, tmp_path):
    from typer.testing import CliRunner

    from relance.cli import app

    r = CliRunner().invoke(
        app,
        [
            "outcomes",
            "add",
            "--db",
            loaded,
            "--customer",
            "C1",
            "--kind",
            "plan",
            "--instalments",
            "2026-12-10:500.00,2027-01-10:500.00",
            "--by",
            "julie",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "(plan) recorded; holds until 2027-01-13" in r.output
    r = CliRunner().invoke(app, ["outcomes", "add", "--db", loaded, "--customer", "C1", "--kind", "promise"])
    assert r.exit_code != 0
    r = CliRunner().invoke(
        app,
        [
            "outcomes",
            "add",
            "--db",
            loaded,
            "--customer",
            "C2",
            "--kind",
            "dispute",
            "--invoices",
            "G1,G2",
            "--reason",
            "not_received",
        ],
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app, ["outcomes", "resolve", "--db", loaded, "--customer", "C2", "--resolution", "credit_note_expected"]
    )
    assert r.exit_code == 0, r.output
    assert query(loaded, "select kind, resolution from outcomes where kind = 'resolution'") == [
        ("resolution", "credit_note_expected")
    ]
    f = _worklist(tmp_path / "w.csv", [{"customer_id": "C1", "outcome": "no_answer"}])
    r = CliRunner().invoke(app, ["outcomes", "import", "--db", loaded, str(f)])
    assert r.exit_code == 0 and "1 outcomes recorded" in r.output, r.output


def test_a_source_hold_and_an_outcome_both_holding_are_shown(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[invoice("F1", "C1", "2026-02-20", "1000.00")],
        holds=[hold("H1", "C1", "2026-03-01", "2026-03-31", kind="other")],
    )
    db = str(tmp_path / "w.duckdb")
    _run(
        src,
        db,
        "2026-03-09",
        "2026-03-09",
        {"2026-03-09": [{"customer": "C1", "kind": "promise", "amount": "1000.00", "date": "2026-03-13"}]},
    )
    u = unit(db, "2026-03-09", "C1")
    assert u["held"] and u["hold_reason"] == "promise"
    assert u["hold_conflict"].startswith("source hold H1 (other until 2026-03-31) and outcome O-")
    assert u["hold_conflict"].endswith("(promise until 2026-03-16) both hold the unit")


def test_import_ten_thousand_outcomes_timing(loaded, tmp_path, capsys):
    rows = [
        {
            "customer_id": "C1" if n % 2 else "C2",
            "outcome": "reached" if n % 3 else "no_answer",
            "outcome_on": "2026-03-06",
            "outcome_note": f"call {n}",
        }
        for n in range(10_000)
    ]
    f = _worklist(tmp_path / "big.csv", rows)
    started = time.perf_counter()
    res = outcomes.import_file(loaded, f, today=date(2026, 3, 10))
    took = time.perf_counter() - started
    assert res["recorded"] == 10_000
    with capsys.disabled():
        print(f"\nimport of 10,000 outcomes: {took:.2f} s")
    assert took < 60


def test_a_source_dispute_and_a_recorded_dispute_of_one_invoice_are_shown(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[invoice("F1", "C1", "2026-02-20", "1000.00"), invoice("F2", "C1", "2026-02-22", "50.00")],
        holds=[hold("H1", "C1", "2026-03-01", invoice_id="F1")],
    )
    db = str(tmp_path / "w.duckdb")
    _run(
        src,
        db,
        "2026-03-09",
        "2026-03-09",
        {"2026-03-09": [{"customer": "C1", "kind": "dispute", "invoices": "F1", "reason": "price"}]},
    )
    u = unit(db, "2026-03-09", "C1")
    assert (u["held"], u["held_invoices"], u["driving_invoice_id"]) == (False, 1, "F2")
    assert u["hold_conflict"].startswith("source hold H1 (dispute of F1) and outcome O-")
    assert u["hold_conflict"].endswith("(dispute of F1) both hold the unit")
