"""Each model alone, like dbt's unit tests: hand-worked rows given as the model's inputs (temp
tables under the input models' names) in an in-memory DuckDB, only that model run
(warehouse.run_model), its rows compared exactly (Decimal) with the rows worked by hand from the
contract (§2 allocation, §3 ladder) and docs/policy.md. Then the graph the runner reads from the
SQL, and the models' YAML tests (warehouse.check_model) on a whole night."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from relance.core.policy import load_policy
from tasks import warehouse
from tasks.age import age_on
from tasks.escalate import Ladder, write_policy_tables
from tasks.ingest import load_macros, load_seeds
from tasks.measure import measure, measure_on
from tasks.sources import files
from tests.ladder_helpers import customer, hold, invoice, payment, run_days, write_source


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def given(con, relation: str, columns: str, rows: list[tuple]) -> None:
    """The input `relation` of the model under test, as a temp table of these rows."""
    con.execute(f"create or replace temp table {relation} ({columns})")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        con.executemany(f"insert into {relation} values ({marks})", rows)


SETTLEMENT = (
    "invoice_id varchar, customer_id varchar, currency varchar, kind varchar, issue_date date, "
    "due_date date, amount decimal(18,2), direct_paid decimal(38,2), direct_applied decimal(38,2), "
    "remaining decimal(18,2), excess decimal(38,2)"
)


def settled(invoice_id, customer_id, currency, issue, due, amount, paid="0.00"):
    """A row of int_direct_settlement: what the payments naming the invoice settle, what remains."""
    amount, paid = D(amount), D(paid)
    applied = min(amount, paid)
    return (
        invoice_id,
        customer_id,
        currency,
        "invoice",
        date.fromisoformat(issue),
        date.fromisoformat(due),
        amount,
        paid,
        applied,
        amount - applied,
        paid - applied,
    )


def test_open_invoices_fifo_allocation_by_unit(con):
    """C1/EUR: A 300.00 (due 01-10) got a direct payment of 100.00 (partial: 200.00 remains);
    C 100.00 and B 500.00 are both due 02-10, C issued first (01-05 < 01-11) so C comes first;
    F 50.00 was paid 70.00 directly: nothing remains (its excess 20.00 is in the pool), no row.
    The pool of C1/EUR is 350.00 (a credit note 150.00 + a payment on account 200.00, larger
    than the oldest invoice's 200.00): A takes 200.00 (open 0), C 100.00 (open 0), the 50.00 left
    goes to B → 450.00 open. C1/USD: D 80.00, no USD credit: the EUR pool does not touch it.
    C2/EUR: E 120.00 is the oldest invoice of all (due 01-01) but only its own pool of 20.00
    applies → 100.00; C1's pool never reaches another customer."""
    given(
        con,
        "int_direct_settlement",
        SETTLEMENT,
        [
            settled("A", "C1", "EUR", "2025-12-10", "2026-01-10", "300.00", paid="100.00"),
            settled("B", "C1", "EUR", "2026-01-11", "2026-02-10", "500.00"),
            settled("C", "C1", "EUR", "2026-01-05", "2026-02-10", "100.00"),
            settled("F", "C1", "EUR", "2026-01-20", "2026-02-20", "50.00", paid="70.00"),
            settled("D", "C1", "USD", "2026-01-01", "2026-01-31", "80.00"),
            settled("E", "C2", "EUR", "2025-12-01", "2026-01-01", "120.00"),
        ],
    )
    given(
        con,
        "int_credit_pool",
        "customer_id varchar, currency varchar, pool decimal(38,2)",
        [("C1", "EUR", D("350.00")), ("C2", "EUR", D("20.00"))],
    )
    warehouse.run_model(con, "intermediate/int_open_invoices", {"as_of": date(2026, 3, 1)})
    rows = con.execute(
        "select invoice_id, customer_id, currency, remaining, pool, remaining_before, open_amount "
        "from int_open_invoices order by customer_id, currency, due_date, issue_date, invoice_id"
    ).fetchall()
    assert rows == [
        ("A", "C1", "EUR", D("200.00"), D("350.00"), D("0.00"), D("0.00")),
        ("C", "C1", "EUR", D("100.00"), D("350.00"), D("200.00"), D("0.00")),
        ("B", "C1", "EUR", D("500.00"), D("350.00"), D("300.00"), D("450.00")),
        ("D", "C1", "USD", D("80.00"), D("0.00"), D("0.00"), D("80.00")),
        ("E", "C2", "EUR", D("120.00"), D("20.00"), D("0.00"), D("100.00")),
    ]
    assert con.execute("select typeof(open_amount) from int_open_invoices limit 1").fetchone()[0] == "DECIMAL(18,2)"


def test_credit_pool_gathers_credit_notes_payments_on_account_and_excesses(con):
    """C1/EUR: credit note CN1 150.00, P1 200.00 on account (no invoice named), P2 30.00 naming X9
    which is not issued yet at as_of (it waits in the pool), P3 100.00 naming A (a direct payment:
    not credit), A's settlement row with no excess, F's with an excess of 20.00 →
    150 + 200 + 30 + 20 = 400.00. C1/USD: P4 40.00 on account → 40.00, its own pool. C2 has an
    invoice and nothing else: no row."""
    given(
        con,
        "int_invoices_as_of",
        "invoice_id varchar, customer_id varchar, currency varchar, kind varchar, issue_date date, due_date date, "
        "amount decimal(18,2)",
        [
            ("A", "C1", "EUR", "invoice", date(2026, 1, 1), date(2026, 1, 31), D("300.00")),
            ("F", "C1", "EUR", "invoice", date(2026, 1, 2), date(2026, 2, 1), D("50.00")),
            ("CN1", "C1", "EUR", "credit_note", date(2026, 1, 15), date(2026, 1, 15), D("150.00")),
            ("G", "C2", "EUR", "invoice", date(2026, 1, 3), date(2026, 2, 2), D("75.00")),
        ],
    )
    given(
        con,
        "int_payments_as_of",
        "payment_id varchar, customer_id varchar, invoice_id varchar, paid_date date, amount decimal(18,2), "
        "currency varchar",
        [
            ("P1", "C1", None, date(2026, 2, 1), D("200.00"), "EUR"),
            ("P2", "C1", "X9", date(2026, 2, 2), D("30.00"), "EUR"),
            ("P3", "C1", "A", date(2026, 2, 3), D("100.00"), "EUR"),
            ("P5", "C1", "F", date(2026, 2, 3), D("70.00"), "EUR"),
            ("P4", "C1", None, date(2026, 2, 4), D("40.00"), "USD"),
        ],
    )
    given(
        con,
        "int_direct_settlement",
        SETTLEMENT,
        [
            settled("A", "C1", "EUR", "2026-01-01", "2026-01-31", "300.00", paid="100.00"),
            settled("F", "C1", "EUR", "2026-01-02", "2026-02-01", "50.00", paid="70.00"),
            settled("G", "C2", "EUR", "2026-01-03", "2026-02-02", "75.00"),
        ],
    )
    warehouse.run_model(con, "intermediate/int_credit_pool", {"as_of": date(2026, 3, 1)})
    assert con.execute("select * from int_credit_pool order by customer_id, currency").fetchall() == [
        ("C1", "EUR", D("400.00")),
        ("C1", "USD", D("40.00")),
    ]


UNITS = (
    "customer_id varchar, currency varchar, country varchar, segment varchar, held boolean, "
    "hold_reason varchar, driving_days_past_due integer, driving_due_date date, dunnable_amount decimal(38,2), "
    "overdue_amount decimal(38,2), tolerance decimal(18,2), target_rank integer"
)
STATE = (
    "customer_id varchar, currency varchar, last_episode_no integer, open_episode_id varchar, "
    "open_episode_opened_on date, last_rank integer, last_stage varchar, last_action_on date, "
    "last_awaiting_approval boolean, formal_notice_sent boolean, notice_sent_on date, notice_received_on date, "
    "notice_deadline date"
)


def test_ladder_decisions_one_step_a_run(con):
    """Thursday 2026-03-12 (a business day in France), the default policy: ranks 1 preventive −5,
    2 due 0, 3 call_1 +8, 4 reminder_2 +20, 5 call_2 +25, 6 formal_notice +30 (min 100.00),
    7 amicable +45 (min 250.00), 8 litigation +60 (min 500.00); min gap 3 days; tolerance 5.00.
    The target rank is int_ladder_units' (the highest offset the driving invoice has reached whose
    minimum the dunnable amount meets), worked here by hand:
      C1: due 03-02, 10 days late → target call_1 (3); no episode: one opens (C1|EUR|1) and takes
          its first step — `due` (2), the preventive is passed over once overdue, call_1 not yet.
      C2: due 03-16 (−4) → target preventive (1): opens and takes the preventive.
      C3: 10 days late but held (a dispute): no episode opens, no step ('held').
      C4: 10 days late, owes 4.00 < tolerance 5.00: the episode opens but no contact
          ('at_target', wait 'below_tolerance').
      C5: 50 days late, 400.00 → target amicable (7); last step formal_notice (6), never sent
          (rejected): amicable waits for a formal notice really sent ('formal_notice_not_sent').
      C6: last step call_1 on 03-10 (2 days ago < 3): 'min_gap' although call_2 is reached.
      C7: last step call_1 on 03-05, 31 days late → target formal_notice (6): one step only,
          reminder_2 (4) — never call_2 or the formal notice in one run.
      C8: nothing left to dun (0.00) in an open episode: the episode closes ('episode_closed').
      C9: 35 days late, 60.00 → formal notice's minimum 100.00 not met: target call_2 (5),
          already taken → 'at_target'.
      C10: as C5, but the formal notice of 03-02 was sent and its registered letter received on
          03-04: deadline 03-12 (8 days), today: amicable waits ('notice_deadline'), from 03-13.
      C11: as C5, the notice sent 02-20 and no receipt known: 20 days ≥ receipt_wait_days (0 by default, 15 at most) → amicable."""
    pol = load_policy(None)
    write_policy_tables(con, pol)
    given(
        con,
        "ladder_calendar",
        "country varchar, day date, is_business_day boolean, holiday_name varchar",
        [("FR", date(2026, 3, 12), True, None)],
    )
    given(
        con,
        "dunning_actions",
        "action_id varchar, as_of date, customer_id varchar, currency varchar, stage_rank integer, status varchar",
        [],
    )

    def unit(cid, dpd, dunnable, overdue, target, held=False, hold_reason=None):
        due = None if dpd is None else date.fromordinal(date(2026, 3, 12).toordinal() - dpd)
        return (cid, "EUR", "FR", "b2b", held, hold_reason, dpd, due, D(dunnable), D(overdue), D("5.00"), target)

    def state(cid, last_rank, last_stage, last_on, notice_sent=False, received=None, deadline=None):
        return (
            cid,
            "EUR",
            1,
            f"{cid}|EUR|1",
            date(2026, 1, 15),
            last_rank,
            last_stage,
            date.fromisoformat(last_on),
            False,
            notice_sent,
            date.fromisoformat(last_on) if notice_sent else None,
            received and date.fromisoformat(received),
            deadline and date.fromisoformat(deadline),
        )

    given(
        con,
        "int_ladder_units",
        UNITS,
        [
            unit("C1", 10, "1000.00", "1000.00", 3),
            unit("C2", -4, "200.00", "0.00", 1),
            unit("C3", 10, "1000.00", "1000.00", 3, held=True, hold_reason="dispute"),
            unit("C4", 10, "4.00", "4.00", 3),
            unit("C5", 50, "400.00", "400.00", 7),
            unit("C6", 26, "300.00", "300.00", 5),
            unit("C7", 31, "300.00", "300.00", 6),
            unit("C8", None, "0.00", "0.00", None),
            unit("C9", 35, "60.00", "60.00", 5),
            unit("C10", 50, "400.00", "400.00", 7),
            unit("C11", 50, "400.00", "400.00", 7),
        ],
    )
    # every unit climbs the standard ladder here (the rules' choice: tests/test_ladders_by_segment.py)
    con.execute("alter table int_ladder_units add column ladder varchar default 'standard'")
    con.execute("alter table int_ladder_units add column ladder_rule varchar default 'default'")
    given(
        con,
        "int_ladder_state",
        STATE,
        [
            state("C5", 6, "formal_notice", "2026-02-20"),
            state("C6", 3, "call_1", "2026-03-10"),
            state("C7", 3, "call_1", "2026-03-05"),
            state("C8", 2, "due", "2026-02-01"),
            state("C9", 5, "call_2", "2026-03-01"),
            state(
                "C10", 6, "formal_notice", "2026-03-02", notice_sent=True, received="2026-03-04", deadline="2026-03-12"
            ),
            state("C11", 6, "formal_notice", "2026-02-20", notice_sent=True),
        ],
    )
    con.execute("alter table int_ladder_state add column notice_on date")
    params = {
        "as_of": date(2026, 3, 12),
        "mode": "live",
        "min_gap_days": pol.min_gap_days,
        "receipt_wait_days": pol.receipt_wait_days,
        "business_days_only": pol.business_days_only,
        "charge_segments": list(pol.late_payment_charges.applies_to_segments),
    }
    warehouse.run_model(con, "intermediate/int_ladder_decisions", params)
    rows = con.execute(
        """
        select customer_id, episode_id, new_episode_no, closed_episode_id, acts,
               case when acts then next_stage end, no_action_reason, wait_reason
        from int_ladder_decisions order by customer_id
        """
    ).fetchall()
    assert rows == [
        ("C1", "C1|EUR|1", 1, None, True, "due", None, None),
        ("C10", "C10|EUR|1", None, None, False, None, "notice_deadline", "notice_deadline"),
        ("C11", "C11|EUR|1", None, None, True, "amicable", None, None),
        ("C2", "C2|EUR|1", 1, None, True, "preventive", None, None),
        ("C3", None, None, None, False, None, "held", None),
        ("C4", "C4|EUR|1", 1, None, False, None, "at_target", "below_tolerance"),
        ("C5", "C5|EUR|1", None, None, False, None, "formal_notice_not_sent", "formal_notice_not_sent"),
        ("C6", "C6|EUR|1", None, None, False, None, "min_gap", None),
        ("C7", "C7|EUR|1", None, None, True, "reminder_2", None, None),
        ("C8", None, None, "C8|EUR|1", False, None, "episode_closed", None),
        ("C9", "C9|EUR|1", None, None, False, None, "at_target", None),
    ]
    details = dict(
        con.execute(
            "select customer_id, wait_detail from int_ladder_decisions where wait_detail is not null"
        ).fetchall()
    )
    assert details == {
        "C4": "owes 4.00 EUR, below the tolerance of 5.00 EUR",
        "C5": "no formal notice was sent in episode C5|EUR|1: amicable waits for one",
        "C10": "the formal notice was received on 2026-03-04, its deadline runs to 2026-03-12: amicable from 2026-03-13",
    }


LADDER_INVOICES = (
    "invoice_id varchar, customer_id varchar, currency varchar, due_date date, "
    "open_amount decimal(18,2), days_past_due integer, invoice_held boolean, dunnable boolean, "
    "unheld_overdue boolean"
)
CUSTOMERS = (
    "customer_id varchar, country varchar, segment varchar, dunning_block boolean, email varchar, "
    "phone varchar, street varchar, city varchar"
)


def test_ladder_units_target_from_due_date_offsets_and_minimum_amounts(con):
    """2026-03-12, default policy (offsets −5, 0, +8, +20, +25, +30 min 100.00, +45 min 250.00,
    +60 min 500.00). The target is the highest stage whose offset the driving invoice (open,
    unheld, earliest due) has reached and whose minimum the dunnable amount meets:
      C1: 9 days late → call_1 (3).      C2: due in 5 days (−5, the offset exactly) → preventive (1).
      C3: due in 6 days → none yet.     C4: 65 days late, 300.00 → litigation's 500.00 not met → amicable (7).
      C5: 65 days late, 80.00 → below the formal notice's 100.00 → call_2 (5).
      C6: I6a 40 days late but held by an invoice-level hold; I6b 10 days late drives → call_1 (3),
          dunnable 150.00 (the held invoice is not), 1 held invoice.
      C7: a dispute on the whole customer → held (dispute), its target still stated (call_1).
      C8: dunning_block → held (dunning_block).
      C9/CHF: no CHF tolerance in the policy → the default ($default_tolerance, here 7.00)."""
    pol = load_policy(None)
    write_policy_tables(con, pol)

    def inv(invoice_id, cid, dpd, amount, held=False, currency="EUR"):
        due = date.fromordinal(date(2026, 3, 12).toordinal() - dpd)
        return (invoice_id, cid, currency, due, D(amount), dpd, held, not held and dpd >= -5, not held and dpd > 0)

    given(
        con,
        "int_ladder_invoices",
        LADDER_INVOICES,
        [
            inv("I1", "C1", 9, "1000.00"),
            inv("I2", "C2", -5, "200.00"),
            inv("I3", "C3", -6, "200.00"),
            inv("I4", "C4", 65, "300.00"),
            inv("I5", "C5", 65, "80.00"),
            inv("I6a", "C6", 40, "900.00", held=True),
            inv("I6b", "C6", 10, "150.00"),
            inv("I7", "C7", 9, "100.00"),
            inv("I8", "C8", 9, "100.00"),
            inv("I9", "C9", 9, "100.00", currency="CHF"),
        ],
    )
    given(con, "int_ladder_state", STATE, [])
    given(
        con,
        "stg_customers",
        CUSTOMERS,
        [(f"C{n}", "FR", "b2b", n == 8, "a@example.com", None, "1 rue", "Paris") for n in range(1, 10)],
    )
    con.execute("alter table stg_customers add column tags varchar")  # optional: no tags
    given(
        con,
        "int_active_holds",
        "hold_id varchar, customer_id varchar, invoice_id varchar, currency varchar, kind varchar, "
        "end_date date, origin varchar, kind_priority integer",
        [
            ("H6", "C6", "I6a", None, "dispute", None, "source", 2),
            ("H7", "C7", None, None, "dispute", None, "source", 2),
        ],
    )
    warehouse.run_model(con, "intermediate/int_ladder_units", {"default_tolerance": D("7.00")})
    rows = con.execute(
        """
        select customer_id, currency, driving_invoice_id, driving_days_past_due, dunnable_amount, held_invoices,
               target_rank, held, hold_reason, tolerance
        from int_ladder_units order by customer_id
        """
    ).fetchall()
    assert rows == [
        ("C1", "EUR", "I1", 9, D("1000.00"), 0, 3, False, None, D("5.00")),
        ("C2", "EUR", "I2", -5, D("200.00"), 0, 1, False, None, D("5.00")),
        ("C3", "EUR", "I3", -6, D("0.00"), 0, None, False, None, D("5.00")),
        ("C4", "EUR", "I4", 65, D("300.00"), 0, 7, False, None, D("5.00")),
        ("C5", "EUR", "I5", 65, D("80.00"), 0, 5, False, None, D("5.00")),
        ("C6", "EUR", "I6b", 10, D("150.00"), 1, 3, False, None, D("5.00")),
        ("C7", "EUR", "I7", 9, D("100.00"), 0, 3, True, "dispute", D("5.00")),
        ("C8", "EUR", "I8", 9, D("100.00"), 0, 3, True, "dunning_block", D("5.00")),
        ("C9", "CHF", "I9", 9, D("100.00"), 0, 3, False, None, D("7.00")),
    ]


# --- the graph ---------------------------------------------------------------------------------


def test_the_graph_comes_from_the_sql():
    # debtor_profile: a stored mart (measure writes it), read by unit_stage as a source
    assert warehouse.inputs("marts/unit_stage") == ("intermediate/int_ladder_decisions", "marts/debtor_profile")
    # `-- depends:` where the SQL names its inputs in strings (a table macro's arguments)
    assert warehouse.inputs("intermediate/int_open_invoices") == (
        "intermediate/int_credit_pool",
        "intermediate/int_direct_settlement",
    )
    # a target and what it needs, in order; stored tables upstream (invoice_snapshot, stg_*) are sources
    assert warehouse.plan("intermediate/int_ladder_decisions") == [
        "intermediate/int_ladder_state",
        "intermediate/int_outcome_status",
        "intermediate/int_outcome_holds",
        "intermediate/int_active_holds",
        "intermediate/int_ladder_invoices",
        "intermediate/int_ladder_units",
        "intermediate/int_ladder_decisions",
    ]
    plan = warehouse.plan(["marts/invoice_snapshot", "marts/aged_balance"])
    assert (
        plan.index("intermediate/int_open_invoices")
        < plan.index("marts/invoice_snapshot")
        < plan.index("marts/aged_balance")
    )
    assert "staging/stg_invoices" not in plan
    # the metrics read the date-stamped allocation directly: no model of the nightly chain
    metrics = warehouse.plan("marts/recovery_metric_parts")
    assert "intermediate/int_open_invoices" not in metrics and "intermediate/int_metrics_open_invoices" in metrics
    # recovery_metrics sums the stored parts (one database's, or every shard's on a fleet): nothing else
    assert warehouse.plan("marts/recovery_metrics") == ["marts/recovery_metrics"]
    # what a step already built is not built again
    built = warehouse.plan("intermediate/int_ladder_decisions")
    assert warehouse.plan("marts/unit_stage", built=built) == ["marts/unit_stage"]


def test_a_cycle_or_an_unknown_input_is_a_clear_error(tmp_path, monkeypatch):
    sql = tmp_path / "sql"
    (sql / "intermediate").mkdir(parents=True)
    (sql / "intermediate" / "int_a.sql").write_text("-- materialized: temp\nselect * from int_b\n")
    (sql / "intermediate" / "int_b.sql").write_text(
        "-- materialized: temp\nwith x as (select 1) select * from int_a, x\n"
    )
    (sql / "intermediate" / "int_c.sql").write_text("-- materialized: temp\nselect * from int_nowhere\n")
    (sql / "intermediate" / "int_d.sql").write_text("-- materialized: temp\n-- depends: int_gone\nselect 1\n")
    monkeypatch.setattr(warehouse, "SQL_DIR", sql)
    for cached in (warehouse.models, warehouse.inputs, warehouse._check_acyclic, warehouse.model_spec):
        cached.cache_clear()
    try:
        cycle = r"cycle: intermediate/int_a -> intermediate/int_b -> intermediate/int_a"
        with pytest.raises(warehouse.ModelGraphError, match=cycle):
            warehouse.plan("intermediate/int_a")
        with pytest.raises(warehouse.ModelGraphError, match="intermediate/int_c reads int_nowhere, which is no model"):
            warehouse.plan("intermediate/int_c")
        with pytest.raises(warehouse.ModelGraphError, match="depends: int_gone` names no model"):
            warehouse.plan("intermediate/int_d")
        with pytest.raises(warehouse.ModelGraphError, match="no model marts/nothing"):
            warehouse.plan("marts/nothing")
    finally:
        monkeypatch.undo()
        for cached in (warehouse.models, warehouse.inputs, warehouse._check_acyclic, warehouse.model_spec):
            cached.cache_clear()


# --- the models' YAML tests on a whole night ------------------------------------------------------


@pytest.fixture
def night(tmp_path):
    """A small source ingested, aged, laddered and measured for 2026-03-11 (what the nightly
    computes), in a DuckDB file; returns (source folder, db)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2"), customer("C3"), customer("C4")],
        invoices=[
            invoice("I1", "C1", "2026-03-02", "1000.00"),
            invoice("I2", "C1", "2026-03-20", "250.00"),
            invoice("I3", "C2", "2026-02-01", "80.00", currency="USD"),
            invoice("CN1", "C3", "2026-02-10", "30.00", kind="credit_note"),
            invoice("I4", "C3", "2026-02-15", "20.00"),
            invoice("I5", "C4", "2026-03-17", "400.00"),
        ],
        payments=[
            payment("P1", "C1", "2026-03-05", "300.00", invoice_id="I1"),
            payment("P2", "C3", "2026-03-01", "50.00"),
        ],
        holds=[hold("H1", "C2", "2026-03-01", invoice_id="I3")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-11"])
    measure(db, date(2026, 3, 11))
    return src, db


def test_every_model_passes_its_yaml_tests(night):
    """The next night (Thursday 2026-03-12) on one connection, so that its temp models are there
    to check too: staging's checked rows, the allocation, the ladder (C4's preventive: I5 is due
    in 5 days) and the metrics."""
    src, db = night
    as_of = date(2026, 3, 12)
    assert {m.split("/")[0] for m in warehouse.specified_models()} == {"marts", "intermediate", "staging"}
    pol = load_policy(None)
    with warehouse.open_db(db) as con:
        files.land_folder(con, Path(src))
        load_seeds(con)
        load_macros(con)
        warehouse.build(
            con,
            [f"staging/stg_{e}_checked" for e in ("customers", "invoices", "payments", "holds")],
            {"as_of": as_of, "loaded_at": datetime(2026, 3, 12, 2, 0), "default_language": "fr"},
        )
        age_on(con, as_of, pol)
        warehouse.build(con, "intermediate/int_credit_pool", {"as_of": as_of})
        summary = Ladder(con, pol, as_of, as_of).run(as_of, "live")
        assert summary["actions_by_stage"] == {"preventive": 1}
        measure_on(con, as_of, pol)
        # measure builds its models on a cursor of its own: the cash attribution (which has a YAML) here too
        warehouse.build(con, "intermediate/int_metrics_cash_attribution", {"as_of": as_of})
        # the statements of late-payment charges (tasks/late_charges.py, off by default): their models too
        from tasks.late_charges import _params

        warehouse.build(con, "marts/late_charge_statements_due", _params(pol, as_of, "live"))
        assert warehouse.check_models(con, None, {"as_of": as_of}, policy=pol) == []
        # C3's credit (CN1 30.00 + P2 50.00) covers I4 20.00: no open invoice, no unit
        assert con.execute(
            "select customer_id, currency from unit_stage where as_of = $d order by 1", {"d": as_of}
        ).fetchall() == [("C1", "EUR"), ("C2", "USD"), ("C4", "EUR")]
        assert con.execute("select count(*) from int_ladder_deliveries").fetchone()[0] == 1


def test_a_violated_key_stops_the_night_naming_model_test_and_keys(night):
    as_of = date(2026, 3, 11)
    with warehouse.open_db(night[1]) as con:
        con.execute(
            "insert into invoice_snapshot select * from invoice_snapshot where as_of = $d and invoice_id = 'I1'",
            {"d": as_of},
        )
        con.execute("update unit_stage set customer_id = 'C404' where as_of = $d and customer_id = 'C2'", {"d": as_of})
        found = warehouse.check_models(con, ["marts/invoice_snapshot", "marts/unit_stage"], {"as_of": as_of})
        assert [(v.model, v.test, v.column, v.rows, v.sample) for v in found] == [
            ("marts/invoice_snapshot", "unique", "as_of, invoice_id", 1, (("2026-03-11", "I1"),)),
            ("marts/unit_stage", "relationships", "customer_id", 1, (("C404",),)),
        ]
        # another date's rows are not this run's concern
        assert warehouse.check_models(con, ["marts/invoice_snapshot"], {"as_of": date(2026, 3, 10)}) == []
        with pytest.raises(warehouse.ModelCheckFailed) as e:
            warehouse.require_keys(con, ["marts/invoice_snapshot", "marts/unit_stage"], {"as_of": as_of})
        assert str(e.value) == (
            "model check failed for 2026-03-11: invoice_snapshot: unique on as_of, invoice_id fails for 1 row(s), "
            "e.g. (2026-03-11, I1); nothing is sent"
        )


def test_accepted_stage_codes_come_from_the_policy(night, tmp_path):
    as_of = date(2026, 3, 11)
    pol = load_policy(None)
    renamed = pol.model_copy(update={"stages": tuple(s.model_copy(update={"code": f"x_{s.code}"}) for s in pol.stages)})
    with warehouse.open_db(night[1]) as con:
        assert warehouse.check_model(con, "marts/unit_stage", {"as_of": as_of}, policy=pol) == []
        found = warehouse.check_model(con, "marts/unit_stage", {"as_of": as_of}, policy=renamed)
        assert {(v.test, v.column) for v in found} == {
            ("accepted_values", "target_stage"),
            ("accepted_values", "current_stage"),
        }
