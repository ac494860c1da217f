"""The escalation ladder, one scenario per rule of the contract (§3), worked by hand.

Default policy unless said: preventive −5 (email), due 0 (email), call_1 +8 (phone),
reminder_2 +20 (email, sms, letter), call_2 +25 (phone), formal_notice +30 (registered_letter,
email; needs approval), amicable +45 (visit), litigation +60 (handoff, min 500.00);
min_gap_days 3; business days only. Calendar: 2026-03-02 is a Monday; Good Friday 2026-04-03
is a public holiday in Germany but not in France (country level); Easter Monday 2026-04-06 and
Labour Day 2026-05-01 are holidays in both.

Runs go through the same code as the nightly job: the source is ingested once (staging does not
depend on the date), then each date is aged and escalated in order.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.ladder_helpers import (
    actions,
    customer,
    days,
    deliveries,
    hold,
    invoice,
    payment,
    query,
    run_days,
    run_nightly,
    send_action,
    set_action_status,
    steps,
    unit,
    write_source,
)

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def policy_with(tmp_path: Path, old: str, new: str, name: str = "policy.yaml") -> str:
    """The default policy with one line changed."""
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return str(path)


def test_full_ladder_day_by_day(tmp_path):
    """I1 1000.00 due Mon 2026-03-02, every day from 02-23 to 04-02, then on chosen days:
    preventive at −5 (Wed 02-25), due on the day (03-02), call_1 at +8 (03-10), reminder_2 at +20
    (Sun 03-22 → Mon 03-23), call_2 at +25 (Fri 03-27), formal_notice at +30 (Wed 04-01,
    pending approval). At +45 (04-16) the target is amicable but the notice is still pending."""
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-03-02", "1000.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-02-23", "2026-04-02") + days("2026-04-15", "2026-04-16"))

    assert actions(db) == [
        ("2026-02-25", "C1", "EUR", "C1|EUR|1", "preventive", D("1000.00"), ["I1"], "planned"),
        ("2026-03-02", "C1", "EUR", "C1|EUR|1", "due", D("1000.00"), ["I1"], "planned"),
        ("2026-03-10", "C1", "EUR", "C1|EUR|1", "call_1", D("1000.00"), ["I1"], "planned"),
        ("2026-03-23", "C1", "EUR", "C1|EUR|1", "reminder_2", D("1000.00"), ["I1"], "planned"),
        ("2026-03-27", "C1", "EUR", "C1|EUR|1", "call_2", D("1000.00"), ["I1"], "planned"),
        ("2026-04-01", "C1", "EUR", "C1|EUR|1", "formal_notice", D("1000.00"), ["I1"], "pending_approval"),
    ]
    assert unit(db, "2026-02-24", "C1")["episode_id"] is None  # −6: no stage yet
    assert unit(db, "2026-02-24", "C1")["no_action_reason"] == "no_target"
    assert unit(db, "2026-03-03", "C1")["no_action_reason"] == "at_target"
    assert unit(db, "2026-03-22", "C1")["no_action_reason"] == "non_business_day"
    u = unit(db, "2026-04-16", "C1")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"]) == (
        "amicable",
        "formal_notice",
        "pending_approval",
    )
    assert u["driving_invoice_id"] == "I1" and u["driving_days_past_due"] == 45 and u["dunnable_amount"] == D("1000.00")

    # The formal notice states the charges: 1000.00 × 30 days × (2.15 + 10) % / 365 = 9.986… → 9.99
    assert query(
        db,
        "select interest_amount, indemnity_amount, charges_total, indemnity_currency from dunning_actions "
        "where stage = 'formal_notice'",
    ) == [(D("9.99"), D("40.00"), D("49.99"), "EUR")]
    assert deliveries(db, "C1|EUR|1|formal_notice") == [
        ("C1|EUR|1|formal_notice|email", "email", "pending_approval", None, None),
        ("C1|EUR|1|formal_notice|registered_letter", "registered_letter", "pending_approval", None, None),
    ]

    # Rejected at approval is still a step (no second formal notice), but no formal notice was sent
    # in the episode: nothing after it is taken (contract §3, "Live state and replays").
    set_action_status(db, "C1|EUR|1|formal_notice", "rejected")
    run_days(None, db, ["2026-04-21", "2026-05-04"])
    assert steps(db)[-1] == ("2026-04-01", "formal_notice")
    u = unit(db, "2026-05-04", "C1")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"], u["wait_reason"]) == (
        "litigation",
        "formal_notice",
        "formal_notice_not_sent",
        "formal_notice_not_sent",
    )
    assert u["wait_detail"] == "no formal notice was sent in episode C1|EUR|1: amicable waits for one"


def test_after_a_sent_formal_notice_the_ladder_goes_on(tmp_path):
    """The late-start ladder (I1 800.00 due Fri 01-30): formal notice on Mon 03-23, approved and sent
    that night. Amicable on Thu 03-26 (+55 ≥ 45, 800.00 ≥ 250.00), Mon 03-30 (+59) at target,
    litigation on Tue 03-31 (+60, 800.00 ≥ 500.00)."""
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-30", "800.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23"])
    assert steps(db)[-1] == ("2026-03-23", "formal_notice")
    send_action(db, "C1|EUR|1|formal_notice")
    run_days(None, db, ["2026-03-26", "2026-03-30", "2026-03-31"])
    assert steps(db)[-2:] == [("2026-03-26", "amicable"), ("2026-03-31", "litigation")]
    assert unit(db, "2026-03-30", "C1")["no_action_reason"] == "at_target"


def _outage_source(tmp_path):
    """I1 1000.00 due Fri 2026-02-13 (+31 on Mon 03-16, +45 on Mon 03-30)."""
    return write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-02-13", "1000.00")]
    )


def _outage_week(tmp_path):
    """Issue 12 §1: nightly runs on Mon 03-16 (due: +31, preventive passed over), Thu 03-19 (call_1)
    and Tue 03-24 (reminder_2); then the outage week replayed 03-25..03-31. The replay's state is
    the real steps and its own: call_2 on Fri 03-27 (3 days after 03-24), formal_notice on Mon 03-30
    (the approval taken as given), 03-31 within the gap."""
    src, db = _outage_source(tmp_path), str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-16", "2026-03-19", "2026-03-24"])
    run_days(None, db, days("2026-03-25", "2026-03-31"), mode="replay")
    assert [(a[0], a[4], a[7]) for a in actions(db)] == [
        ("2026-03-16", "due", "planned"),
        ("2026-03-19", "call_1", "planned"),
        ("2026-03-24", "reminder_2", "planned"),
        ("2026-03-27", "call_2", "simulated"),
        ("2026-03-30", "formal_notice", "simulated"),
    ]
    assert unit(db, "2026-03-31", "C1")["no_action_reason"] == "min_gap"
    return src, db


def test_live_runs_after_a_backfill_go_on_from_the_last_real_step(tmp_path):
    """After the replay, the live runs of 03-27 and 03-30 read only real actions: the last is
    reminder_2 of 03-24, so call_2 on Fri 03-27 for real, then the formal notice on Mon 03-30 for
    real (pending approval); each takes the place of the simulated action of the same id (same
    episode, same stage). On Thu 04-02 (+48, target amicable) the notice waits for approval: no
    visit (the bug sent one, on the strength of a simulated notice)."""
    _, db = _outage_week(tmp_path)
    run_days(None, db, ["2026-03-27", "2026-03-30", "2026-04-02"])
    assert [(a[0], a[3], a[4], a[7]) for a in actions(db)] == [
        ("2026-03-16", "C1|EUR|1", "due", "planned"),
        ("2026-03-19", "C1|EUR|1", "call_1", "planned"),
        ("2026-03-24", "C1|EUR|1", "reminder_2", "planned"),
        ("2026-03-27", "C1|EUR|1", "call_2", "planned"),
        ("2026-03-30", "C1|EUR|1", "formal_notice", "pending_approval"),
    ]
    assert query(db, "select distinct mode from dunning_actions") == [("live",)]
    assert deliveries(db, "C1|EUR|1|call_2") == [("C1|EUR|1|call_2|phone", "phone", "planned", None, None)]
    assert [d[2] for d in deliveries(db, "C1|EUR|1|formal_notice")] == ["pending_approval", "pending_approval"]
    # the charges of the real notice: 1000.00 × 45 days (02-14..03-30) × 12.15 % / 365 = 14.979… → 14.98
    assert query(db, "select interest_amount, indemnity_amount from dunning_actions where stage = 'formal_notice'") == [
        (D("14.98"), D("40.00"))
    ]
    assert query(db, "select count(*) from action_charges where action_id = 'C1|EUR|1|formal_notice'") == [(1,)]
    u = unit(db, "2026-04-02", "C1")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"], u["action_id"]) == (
        "amicable",
        "formal_notice",
        "pending_approval",
        None,
    )
    assert query(db, "select episode_id, episode_no, opened_on::varchar, closed_on from dunning_episodes") == [
        ("C1|EUR|1", 1, "2026-03-16", None)
    ]


def test_first_live_run_after_a_backfill_takes_the_next_real_step_and_keeps_the_rest_as_history(tmp_path):
    """No live run during the outage week: the next live run, Thu 04-02, goes on from the last real
    step (reminder_2 of 03-24): call_2 for real (replacing the simulated call_2 of 03-27); the
    simulated formal notice of 03-30 stays, as the history of that date, and is not a step. Tue
    04-07 (Mon 04-06 is Easter Monday): the formal notice for real. Approved on 04-07 but not yet
    sent, the unit waits on 04-24 (+70, target litigation); once it is sent, amicable on 04-27."""
    from tasks.dispatch.approval import approve

    _, db = _outage_week(tmp_path)
    [live] = run_days(None, db, ["2026-04-02"])
    assert live["actions_by_stage"] == {"call_2": 1}
    assert live["replay_history_not_taken"] == 1  # the simulated formal notice of 03-30
    assert [(a[0], a[4], a[7]) for a in actions(db)][3:] == [
        ("2026-03-30", "formal_notice", "simulated"),
        ("2026-04-02", "call_2", "planned"),
    ]
    assert query(db, "select mode from dunning_actions where action_id = 'C1|EUR|1|call_2'") == [("live",)]
    u = unit(db, "2026-04-02", "C1")
    assert (u["current_stage"], u["action_id"]) == ("call_2", "C1|EUR|1|call_2")

    run_days(None, db, ["2026-04-06", "2026-04-07"])
    assert unit(db, "2026-04-06", "C1")["no_action_reason"] == "non_business_day"
    assert [(a[0], a[4], a[7]) for a in actions(db)][3:] == [
        ("2026-04-02", "call_2", "planned"),
        ("2026-04-07", "formal_notice", "pending_approval"),
    ]
    approve(db, date(2026, 4, 7), approve_all=True, by="finance")
    run_days(None, db, ["2026-04-24"])
    u = unit(db, "2026-04-24", "C1")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"]) == (
        "litigation",
        "formal_notice",
        "formal_notice_not_sent",
    )
    send_action(db, "C1|EUR|1|formal_notice")
    run_days(None, db, ["2026-04-27"])
    assert steps(db)[-1] == ("2026-04-27", "amicable")


def test_a_replay_after_real_runs_adds_no_twin_and_a_live_rerun_keeps_them(tmp_path):
    """The live runs of 03-27 and 03-30 (real call_2 and formal notice), then the same backfill
    again: the replay reads the real actions as its state and adds nothing; a live re-run of
    03-30 changes nothing either."""
    from tests.ladder_helpers import LADDER_TABLES, table_rows

    _, db = _outage_week(tmp_path)
    run_days(None, db, ["2026-03-27", "2026-03-30"])
    before = {t: table_rows(db, t) for t in LADDER_TABLES if t != "unit_stage"}
    summary = run_days(None, db, days("2026-03-25", "2026-03-31"), mode="replay")
    assert sum(s["actions"] for s in summary) == 0
    run_days(None, db, ["2026-03-30"])
    assert {t: table_rows(db, t) for t in LADDER_TABLES if t != "unit_stage"} == before
    assert {a[7] for a in actions(db)} == {"planned", "pending_approval"}


def test_late_start_passes_over_preventive_and_never_skips(tmp_path):
    """I1 due Fri 2026-01-30, first run Tue 03-10 at +39 (target formal_notice): the ladder starts
    at `due` (preventive passed over: already overdue), then one stage per step, 3 days apart,
    weekdays only: call_1 Fri 03-13, reminder_2 Mon 03-16, call_2 Thu 03-19, and the formal
    notice Mon 03-23 (Sun 03-22 is the first day 3 days after 03-19)."""
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-30", "800.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-10", "2026-03-24"))
    assert steps(db) == [
        ("2026-03-10", "due"),
        ("2026-03-13", "call_1"),
        ("2026-03-16", "reminder_2"),
        ("2026-03-19", "call_2"),
        ("2026-03-23", "formal_notice"),
    ]
    u = unit(db, "2026-03-10", "C1")
    assert (u["target_stage"], u["current_stage"], u["action_id"]) == ("formal_notice", "due", "C1|EUR|1|due")
    assert unit(db, "2026-03-11", "C1")["no_action_reason"] == "min_gap"
    assert unit(db, "2026-03-22", "C1")["no_action_reason"] == "non_business_day"
    assert unit(db, "2026-03-24", "C1")["no_action_reason"] == "pending_approval"


@pytest.mark.parametrize(
    "gap, expected",
    [
        (7, [("2026-03-10", "due"), ("2026-03-17", "call_1")]),
        # no gap: a step every business day (not the weekend of 03-14/15)
        (
            0,
            [
                ("2026-03-10", "due"),
                ("2026-03-11", "call_1"),
                ("2026-03-12", "reminder_2"),
                ("2026-03-13", "call_2"),
                ("2026-03-16", "formal_notice"),
            ],
        ),
    ],
)
def test_min_gap_days(tmp_path, gap, expected):
    pol = policy_with(tmp_path, "min_gap_days: 3", f"min_gap_days: {gap}")
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-30", "800.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-10", "2026-03-20"), policy=pol)
    assert steps(db) == expected


def test_weekend_moves_the_step_to_monday_and_the_episode_opens_on_saturday(tmp_path):
    """I1 due Thu 2026-03-12: −5 is Sat 03-07 → preventive on Mon 03-09 (at −3), due on 03-12."""
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-03-12", "300.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-06", "2026-03-12"))
    assert steps(db) == [("2026-03-09", "preventive"), ("2026-03-12", "due")]
    sat = unit(db, "2026-03-07", "C1")
    assert (sat["target_stage"], sat["episode_id"], sat["current_stage"], sat["no_action_reason"]) == (
        "preventive",
        "C1|EUR|1",
        None,
        "non_business_day",
    )
    assert query(db, "select episode_id, opened_on::varchar, closed_on from dunning_episodes") == [
        ("C1|EUR|1", "2026-03-07", None)
    ]


def test_business_days_only_false_acts_on_weekends(tmp_path):
    pol = policy_with(tmp_path, "business_days_only: true", "business_days_only: false")
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-03-12", "300.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-06", "2026-03-12"), policy=pol)
    assert steps(db) == [("2026-03-07", "preventive"), ("2026-03-12", "due")]


def test_public_holidays_of_each_customers_country(tmp_path):
    """Invoices due Fri 2026-04-03 (Good Friday: a holiday in Germany, not in France).
    −5 is Sun 03-29 → preventive Mon 03-30 for both. The due step: FR on 04-03; DE skips Good
    Friday, the weekend and Easter Monday 04-06 → Tue 04-07. FR2, due Easter Monday 04-06:
    preventive Wed 04-01, due Tue 04-07."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("FR1"), customer("DE1", country="DE", city="Berlin", postal_code="10115"), customer("FR2")],
        invoices=[
            invoice("I1", "FR1", "2026-04-03"),
            invoice("I2", "DE1", "2026-04-03"),
            invoice("I3", "FR2", "2026-04-06"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-27", "2026-04-08"))
    assert steps(db, "FR1") == [("2026-03-30", "preventive"), ("2026-04-03", "due")]
    assert steps(db, "DE1") == [("2026-03-30", "preventive"), ("2026-04-07", "due")]
    assert steps(db, "FR2") == [("2026-04-01", "preventive"), ("2026-04-07", "due")]
    assert unit(db, "2026-04-03", "DE1")["no_action_reason"] == "non_business_day"
    assert unit(db, "2026-04-06", "FR2")["no_action_reason"] == "non_business_day"


def test_customer_level_hold_starts_and_ends(tmp_path):
    """A dispute on the whole customer from 03-12 to 03-17 (inclusive) holds both its currencies:
    after `due` on 03-10, no step while held (call_1 was due on 03-13); call_1 on Wed 03-18."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("I1", "C1", "2026-01-30", "800.00"),
            invoice("I2", "C1", "2026-01-30", "500.00", currency="USD"),
        ],
        holds=[hold("H1", "C1", "2026-03-12", "2026-03-17")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-10", "2026-03-20"))
    for cur in ("EUR", "USD"):
        assert steps(db, "C1", cur) == [("2026-03-10", "due"), ("2026-03-18", "call_1")]
        u = unit(db, "2026-03-13", "C1", cur)
        assert (
            u["held"],
            u["hold_reason"],
            u["hold_id"],
            u["current_stage"],
            u["episode_id"],
            u["no_action_reason"],
        ) == (True, "dispute", "H1", "due", f"C1|{cur}|1", "held")
        assert u["target_stage"] == "formal_notice"  # +42: what it would be, were it not held
    assert unit(db, "2026-03-18", "C1")["held"] is False


def test_invoice_level_hold_starts_and_ends(tmp_path):
    """I1 500.00 due Fri 02-27, I2 300.00 due Fri 03-20; a dispute on I1 from 03-10 to 03-16.
    03-09 (I1 +10): episode 1, `due` (preventive passed over), claiming I1 only (I2 at −11).
    03-10: I1 held → nothing dunnable (I2 at −10) → episode 1 closes.
    03-15 (Sun): I2 at −5 → episode 2 opens; 03-16: preventive on I2 (from the bottom again).
    03-17: hold over, I1 drives again (+18, target call_1) → the next stage is `due`, 3 days
    after 03-16: Thu 03-19, claiming I1 (+20) and I2 (−1)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("I1", "C1", "2026-02-27", "500.00"),
            invoice("I2", "C1", "2026-03-20", "300.00", issue="2026-02-18"),
        ],
        holds=[hold("H1", "C1", "2026-03-10", "2026-03-16", invoice_id="I1")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-09", "2026-03-19"))
    assert [(a[0], a[3], a[4], a[5], a[6]) for a in actions(db)] == [
        ("2026-03-09", "C1|EUR|1", "due", D("500.00"), ["I1"]),
        ("2026-03-16", "C1|EUR|2", "preventive", D("300.00"), ["I2"]),
        ("2026-03-19", "C1|EUR|2", "due", D("800.00"), ["I1", "I2"]),
    ]
    closed = unit(db, "2026-03-10", "C1")
    assert (
        closed["episode_id"],
        closed["closed_episode_id"],
        closed["held"],
        closed["held_invoices"],
        closed["driving_invoice_id"],
        closed["dunnable_amount"],
        closed["target_stage"],
    ) == (None, "C1|EUR|1", False, 1, "I2", D("0.00"), None)
    assert unit(db, "2026-03-17", "C1")["no_action_reason"] == "min_gap"
    assert query(db, "select episode_id, opened_on::varchar, closed_on::varchar from dunning_episodes order by 1") == [
        ("C1|EUR|1", "2026-03-09", "2026-03-10"),
        ("C1|EUR|2", "2026-03-15", None),
    ]


def test_dunning_block_never_contacts_but_still_ages(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1", dunning_block="true")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13"])
    assert actions(db) == []
    u = unit(db, "2026-03-13", "C1")
    assert (
        u["held"],
        u["hold_reason"],
        u["episode_id"],
        u["current_stage"],
        u["target_stage"],
        u["no_action_reason"],
    ) == (True, "dunning_block", None, None, "formal_notice", "held")
    assert query(db, "select count(*) from invoice_snapshot where as_of = '2026-03-13'") == [(1,)]


def test_min_amount_keeps_a_unit_at_a_lower_stage(tmp_path):
    """Two debtors, 400.00 and 600.00, due Fri 2026-01-02; runs on chosen days from 03-02 (+59).
    Both climb to the formal notice (approved and sent), then amicable on 03-19. At +80 (03-23) litigation
    (min 500.00) is the target of the 600.00 debtor only; the 400.00 one stays at amicable."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C400"), customer("C600")],
        invoices=[invoice("I4", "C400", "2026-01-02", "400.00"), invoice("I6", "C600", "2026-01-02", "600.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-02", "2026-03-05", "2026-03-09", "2026-03-12", "2026-03-16"])
    for c in ("C400", "C600"):
        send_action(db, f"{c}|EUR|1|formal_notice")
    run_days(None, db, ["2026-03-19", "2026-03-23"])
    ladder = [
        ("2026-03-02", "due"),
        ("2026-03-05", "call_1"),
        ("2026-03-09", "reminder_2"),
        ("2026-03-12", "call_2"),
        ("2026-03-16", "formal_notice"),
        ("2026-03-19", "amicable"),
    ]
    assert steps(db, "C400") == ladder
    assert steps(db, "C600") == ladder + [("2026-03-23", "litigation")]
    u = unit(db, "2026-03-23", "C400")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"]) == ("amicable", "amicable", "at_target")
    assert unit(db, "2026-03-23", "C600")["target_stage"] == "litigation"


def test_episode_closes_when_paid_and_the_next_starts_from_the_bottom(tmp_path):
    """I1 500.00 due 03-02: preventive 02-25, due 03-02, call_1 03-10; I1 paid on 03-11 →
    nothing dunnable (I2 due 03-20 is at −9) → episode 1 closes. I2 reaches −5 on Sun 03-15 →
    episode 2 opens; preventive on Mon 03-16, from the bottom."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("I1", "C1", "2026-03-02", "500.00"),
            invoice("I2", "C1", "2026-03-20", "200.00", issue="2026-03-01"),
        ],
        payments=[payment("P1", "C1", "2026-03-11", "500.00", invoice_id="I1")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-02-24", "2026-03-16"))
    assert [(a[0], a[3], a[4], a[6]) for a in actions(db)] == [
        ("2026-02-25", "C1|EUR|1", "preventive", ["I1"]),
        ("2026-03-02", "C1|EUR|1", "due", ["I1"]),
        ("2026-03-10", "C1|EUR|1", "call_1", ["I1"]),
        ("2026-03-16", "C1|EUR|2", "preventive", ["I2"]),
    ]
    u = unit(db, "2026-03-11", "C1")
    assert (u["episode_id"], u["closed_episode_id"], u["current_stage"], u["no_action_reason"]) == (
        None,
        "C1|EUR|1",
        None,
        "episode_closed",
    )
    assert query(db, "select episode_id, opened_on::varchar, closed_on::varchar from dunning_episodes order by 1") == [
        ("C1|EUR|1", "2026-02-25", "2026-03-11"),
        ("C1|EUR|2", "2026-03-15", None),
    ]


def test_paid_unit_with_no_open_invoice_leaves_unit_stage_after_closing(tmp_path):
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[invoice("I1", "C1", "2026-03-02", "500.00")],
        payments=[payment("P1", "C1", "2026-03-04", "500.00", invoice_id="I1")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-02", "2026-03-05"))
    assert unit(db, "2026-03-03", "C1")["episode_id"] == "C1|EUR|1"
    assert unit(db, "2026-03-04", "C1")["closed_episode_id"] == "C1|EUR|1"  # open before: listed, closed
    assert unit(db, "2026-03-05", "C1") is None  # nothing open, no episode


def test_several_currencies_are_separate_units(tmp_path):
    """EUR due Mon 03-02, USD due Wed 03-04: two ladders, two episodes, gaps counted per unit."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("I1", "C1", "2026-03-02", "1000.00"),
            invoice("I2", "C1", "2026-03-04", "500.00", currency="USD"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-02-24", "2026-03-05"))
    assert [(a[0], a[2], a[3], a[4], a[5]) for a in actions(db)] == [
        ("2026-02-25", "EUR", "C1|EUR|1", "preventive", D("1000.00")),
        ("2026-02-27", "USD", "C1|USD|1", "preventive", D("500.00")),
        ("2026-03-02", "EUR", "C1|EUR|1", "due", D("1000.00")),
        ("2026-03-04", "USD", "C1|USD|1", "due", D("500.00")),
    ]


def test_partial_payment_changes_the_driving_invoice_and_the_episode_goes_on(tmp_path):
    """I1 500.00 due 03-02, I2 300.00 due 03-09. 600.00 paid on account on 03-05: the pool settles
    I1 (oldest) and 100.00 of I2 → I2 (200.00 open) drives, at −4: below the last stage (due), so
    no step until its own +8 (Tue 03-17): call_1 for 200.00, in the same episode."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("I1", "C1", "2026-03-02", "500.00"),
            invoice("I2", "C1", "2026-03-09", "300.00", issue="2026-02-01"),
        ],
        payments=[payment("P1", "C1", "2026-03-05", "600.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-02-24", "2026-03-17"))
    assert [(a[0], a[3], a[4], a[5], a[6]) for a in actions(db)] == [
        ("2026-02-25", "C1|EUR|1", "preventive", D("500.00"), ["I1"]),
        ("2026-03-02", "C1|EUR|1", "due", D("500.00"), ["I1"]),
        ("2026-03-17", "C1|EUR|1", "call_1", D("200.00"), ["I2"]),
    ]
    before, after = unit(db, "2026-03-04", "C1"), unit(db, "2026-03-05", "C1")
    assert (before["driving_invoice_id"], before["dunnable_amount"]) == ("I1", D("800.00"))
    assert (
        after["driving_invoice_id"],
        after["dunnable_amount"],
        after["episode_id"],
        after["current_stage"],
        after["target_stage"],
        after["no_action_reason"],
    ) == ("I2", D("200.00"), "C1|EUR|1", "due", "preventive", "at_target")


def test_pending_approval_blocks_until_approved(tmp_path):
    """I1 due 01-30: the formal notice of Mon 03-23 is pending approval. The target is amicable
    (+45 was 03-16), yet the runs of 03-26 and 03-30 take no step; once the notice is approved
    and sent, the next run (03-31) takes the amicable step."""
    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-30", "800.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(
        src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23", "2026-03-26", "2026-03-30"]
    )
    assert steps(db)[-1] == ("2026-03-23", "formal_notice")
    assert unit(db, "2026-03-30", "C1")["no_action_reason"] == "pending_approval"
    send_action(db, "C1|EUR|1|formal_notice")  # approved, and sent by that night's dispatch
    run_days(None, db, ["2026-03-31"])
    assert steps(db)[-1] == ("2026-03-31", "amicable")


def test_channels_fall_back_to_letter_and_undeliverable(tmp_path):
    """Deliveries of each stage for debtors missing contacts. I due 01-30; runs on 03-10 (due),
    03-13 (call_1), 03-16 (reminder_2) and 03-23 (call_2)."""
    src = write_source(
        tmp_path / "src",
        customers=[
            customer("NOMAIL", email=""),
            customer("NOPHONE", phone=""),
            customer("NOTHING", email="", phone="", street="", postal_code="", city=""),
            customer("NOADDR", street="", postal_code="", city=""),
        ],
        invoices=[invoice(f"I{c}", c, "2026-01-30", "800.00") for c in ("NOMAIL", "NOPHONE", "NOTHING", "NOADDR")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-23"])
    got = {(d[0], d[2], d[3]) for d in deliveries(db)}
    planned, skipped, undeliverable = "planned", "skipped", "undeliverable"
    assert got == {
        # no email: email → letter; the stages sending a letter skip the email
        ("NOMAIL|EUR|1|due|letter", planned, "email"),
        ("NOMAIL|EUR|1|call_1|phone", planned, None),
        ("NOMAIL|EUR|1|reminder_2|email", skipped, None),
        ("NOMAIL|EUR|1|reminder_2|sms", planned, None),
        ("NOMAIL|EUR|1|reminder_2|letter", planned, None),
        ("NOMAIL|EUR|1|call_2|phone", planned, None),
        # no phone: phone → letter; sms skipped where a letter goes anyway
        ("NOPHONE|EUR|1|due|email", planned, None),
        ("NOPHONE|EUR|1|call_1|letter", planned, "phone"),
        ("NOPHONE|EUR|1|reminder_2|email", planned, None),
        ("NOPHONE|EUR|1|reminder_2|sms", skipped, None),
        ("NOPHONE|EUR|1|reminder_2|letter", planned, None),
        ("NOPHONE|EUR|1|call_2|letter", planned, "phone"),
        # nothing at all: every letter is undeliverable
        ("NOTHING|EUR|1|due|letter", undeliverable, "email"),
        ("NOTHING|EUR|1|call_1|letter", undeliverable, "phone"),
        ("NOTHING|EUR|1|reminder_2|email", skipped, None),
        ("NOTHING|EUR|1|reminder_2|sms", skipped, None),
        ("NOTHING|EUR|1|reminder_2|letter", undeliverable, None),
        ("NOTHING|EUR|1|call_2|letter", undeliverable, "phone"),
        # no postal address: electronic channels go, letters cannot
        ("NOADDR|EUR|1|due|email", planned, None),
        ("NOADDR|EUR|1|call_1|phone", planned, None),
        ("NOADDR|EUR|1|reminder_2|email", planned, None),
        ("NOADDR|EUR|1|reminder_2|sms", planned, None),
        ("NOADDR|EUR|1|reminder_2|letter", undeliverable, None),
        ("NOADDR|EUR|1|call_2|phone", planned, None),
    }
    reasons = {d[0]: d[4] for d in deliveries(db)}
    assert (
        reasons["NOTHING|EUR|1|due|letter"]
        == "no postal address (street and city) for a letter, the fallback for email"
    )
    assert reasons["NOMAIL|EUR|1|reminder_2|email"] == "no email address for email; the stage already sends a letter"
    # the actions themselves are steps whatever their deliveries
    assert {a[4] for a in actions(db, "NOTHING")} == {"due", "call_1", "reminder_2", "call_2"}


def test_formal_notice_deliveries_without_address_or_email(tmp_path):
    """Formal notices of Mon 03-23 (I due 01-30, runs of the late-start scenario). With no channel
    left to send on (NOTHING), there is nothing to approve: the notice is a planned step, but no
    formal notice was sent, so nothing after it is taken (no amicable on Thu 03-26, though +45 has
    passed: contract §3); the others wait for approval."""
    src = write_source(
        tmp_path / "src",
        customers=[
            customer("NOADDR", street="", postal_code="", city=""),
            customer("NOMAIL", email=""),
            customer("NOTHING", email="", phone="", street="", postal_code="", city=""),
        ],
        invoices=[
            invoice("I1", "NOADDR", "2026-01-30", "800.00"),
            invoice("I2", "NOMAIL", "2026-01-30", "800.00"),
            invoice("I3", "NOTHING", "2026-01-30", "800.00"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23", "2026-03-26"])
    assert {(d[0], d[2]) for d in deliveries(db) if "formal_notice" in d[0]} == {
        ("NOADDR|EUR|1|formal_notice|registered_letter", "undeliverable"),
        ("NOADDR|EUR|1|formal_notice|email", "pending_approval"),
        ("NOMAIL|EUR|1|formal_notice|registered_letter", "pending_approval"),
        ("NOMAIL|EUR|1|formal_notice|email", "skipped"),
        ("NOTHING|EUR|1|formal_notice|registered_letter", "undeliverable"),
        ("NOTHING|EUR|1|formal_notice|email", "skipped"),
    }
    assert query(
        db, "select action_id, status, requires_approval from dunning_actions where stage = 'formal_notice' order by 1"
    ) == [
        ("NOADDR|EUR|1|formal_notice", "pending_approval", True),
        ("NOMAIL|EUR|1|formal_notice", "pending_approval", True),
        ("NOTHING|EUR|1|formal_notice", "planned", False),
    ]
    assert [s for s in steps(db) if s[0] == "2026-03-26"] == []
    assert actions(db, "NOTHING")[-1][4] == "formal_notice"
    u = unit(db, "2026-03-26", "NOTHING")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"]) == (
        "amicable",
        "formal_notice",
        "formal_notice_not_sent",
    )
    assert unit(db, "2026-03-26", "NOMAIL")["no_action_reason"] == "pending_approval"


def test_two_channels_falling_back_make_one_letter(tmp_path):
    """A custom ladder whose first stage sends email and sms: with neither contact, one letter."""
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "stages:\n"
        "  - {code: nudge, offset_days: 0, channels: [email, sms]}\n"
        "  - {code: call, offset_days: 10, channels: [phone]}\n"
        "aging_buckets: [{name: not_due, max_days: 0}, {name: overdue}]\n",
        encoding="utf-8",
    )
    src = write_source(
        tmp_path / "src", customers=[customer("C1", email="", phone="")], invoices=[invoice("I1", "C1", "2026-03-02")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-02"], policy=str(pol))
    assert [(d[0], d[2], d[3]) for d in deliveries(db)] == [("C1|EUR|1|nudge|letter", "planned", "email,sms")]


def test_rerun_of_a_date_changes_nothing_and_sent_deliveries_stay(tmp_path):
    from tests.ladder_helpers import LADDER_TABLES, table_rows

    src = write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2", email="")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "C2", "2026-03-12")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, days("2026-03-09", "2026-03-13"))
    import duckdb

    with duckdb.connect(db) as con:
        con.execute(
            "update deliveries set status = 'sent', provider = 'outbox', provider_message_id = 'm-1', "
            "attempts = 1, sent_at = timestamp '2026-03-10 21:00:00' where delivery_id = 'C1|EUR|1|due|email'"
        )
    before = {t: table_rows(db, t) for t in LADDER_TABLES}
    run_days(src, db, ["2026-03-10"])  # a date in the middle
    run_days(None, db, ["2026-03-13"])  # the last one
    after = {t: table_rows(db, t) for t in LADDER_TABLES}
    assert after == before
    assert query(db, "select status, provider_message_id from deliveries where delivery_id = 'C1|EUR|1|due|email'") == [
        ("sent", "m-1")
    ]


def test_nightly_run_reports_the_ladder(tmp_path):
    from relance.cli import format_summary

    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-30", "800.00")]
    )
    db = str(tmp_path / "r.duckdb")
    [summary] = run_nightly(src, db, "2026-03-10")
    esc = summary["escalate"]
    assert (esc["mode"], esc["units"], esc["actions"], esc["actions_by_stage"], esc["deliveries_by_status"]) == (
        "live",
        1,
        1,
        {"due": 1},
        {"planned": 1},
    )
    text = format_summary(summary)
    assert "1 new: 1 due" in text and "unit_stage" in text


def test_tolerance_no_contact_for_cents(tmp_path):
    """Default tolerance 5.00 per currency. Due Fri 01-30, runs on 03-10 (+39) and 03-13. 0.05 and 4.99
    owed: never contacted; the episode is open (the unit has a target: call_2, as formal_notice
    needs 100.00) but the unit is at_target, the reason in unit_stage. 5.00 owed is not below: due
    on 03-10, call_1 on 03-13."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C005"), customer("C499"), customer("C500")],
        invoices=[
            invoice("I1", "C005", "2026-01-30", "0.05"),
            invoice("I2", "C499", "2026-01-30", "4.99"),
            invoice("I3", "C500", "2026-01-30", "5.00"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    summaries = run_days(src, db, ["2026-03-10", "2026-03-13"])
    assert summaries[-1]["held_back_by_reason"] == {"below_tolerance": 2}
    from relance.cli import format_ladder

    assert "  held back: 2 units (below the tolerance, not contacted)" in format_ladder(summaries[-1])
    assert steps(db, "C005") == [] and steps(db, "C499") == []
    assert steps(db, "C500") == [("2026-03-10", "due"), ("2026-03-13", "call_1")]
    u = unit(db, "2026-03-13", "C005")
    assert (u["episode_id"], u["target_stage"], u["current_stage"], u["no_action_reason"], u["wait_reason"]) == (
        "C005|EUR|1",
        "call_2",
        None,
        "at_target",
        "below_tolerance",
    )
    assert u["wait_detail"] == "owes 0.05 EUR, below the tolerance of 5.00 EUR"
    assert unit(db, "2026-03-13", "C499")["wait_detail"] == "owes 4.99 EUR, below the tolerance of 5.00 EUR"
    assert unit(db, "2026-03-13", "C500")["wait_reason"] is None


def test_tolerance_per_currency(tmp_path):
    """A policy with a tolerance of 10.00 GBP and 2.00 for the other currencies: 9.99 GBP is not
    contacted, 3.00 CHF (not listed: the default) is (due on 03-10)."""
    pol = policy_with(tmp_path, 'tolerance:\n  default: "5.00"\n', 'tolerance:\n  default: "2.00"\n')
    text = Path(pol).read_text(encoding="utf-8").replace('GBP: "5.00"', 'GBP: "10.00"')
    Path(pol).write_text(text, encoding="utf-8")
    from relance.core.policy import load_policy

    assert load_policy(pol).tolerance.by_currency["GBP"] == D("10.00")
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1")],
        invoices=[
            invoice("G1", "C1", "2026-01-30", "9.99", currency="GBP"),
            invoice("U1", "C1", "2026-01-30", "3.00", currency="CHF"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10"], policy=pol)
    assert steps(db, "C1", "GBP") == []
    assert steps(db, "C1", "CHF") == [("2026-03-10", "due")]
    assert unit(db, "2026-03-10", "C1", "GBP")["wait_detail"] == "owes 9.99 GBP, below the tolerance of 10.00 GBP"


def test_costly_stages_need_their_minimum(tmp_path):
    """Default minimums: formal_notice 100.00, amicable 250.00, litigation 500.00. Due Fri 01-30, runs
    every business day's step from 03-10. 80.00 owed climbs to call_2 (03-19) and stays there: the
    target is call_2. 200.00 owed gets its formal notice (03-23), sent; at +55 (03-26) its target is
    still formal_notice (amicable needs 250.00): no visit for 200.00."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("C80"), customer("C200")],
        invoices=[invoice("I1", "C80", "2026-01-30", "80.00"), invoice("I2", "C200", "2026-01-30", "200.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23"])
    ladder = [("2026-03-10", "due"), ("2026-03-13", "call_1"), ("2026-03-16", "reminder_2"), ("2026-03-19", "call_2")]
    assert steps(db, "C80") == ladder
    assert steps(db, "C200") == ladder + [("2026-03-23", "formal_notice")]
    send_action(db, "C200|EUR|1|formal_notice")
    run_days(None, db, ["2026-03-26"])
    u = unit(db, "2026-03-26", "C80")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"], u["wait_reason"]) == (
        "call_2",
        "call_2",
        "at_target",
        None,
    )
    u = unit(db, "2026-03-26", "C200")
    assert (u["target_stage"], u["current_stage"], u["no_action_reason"]) == (
        "formal_notice",
        "formal_notice",
        "at_target",
    )
    assert steps(db, "C200")[-1] == ("2026-03-23", "formal_notice")
