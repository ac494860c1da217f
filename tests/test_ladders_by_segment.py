"""Ladders per segment and risk (issue 16 §2; docs/policy.md "Ladders"), worked by hand.

The default policy (policies/default.yaml) ships five ladders, ranks of the catalogue (`stages:`):
  1 preventive, 2 due, 3 call_1, 4 reminder_2, 5 call_2, 6 formal_notice, 7 amicable, 8 litigation
  standard      -5   0   8  20  25  30  45  60   (the `stages:` themselves)
  b2b_class_d   -7   0   3  10  14  20  30  45
  key_accounts  -5   0   5  15* 22  30  45  60   (*reminder_2 by phone and email, no letter;
                                                   every action sending a letter waits for approval)
  b2c           as standard; legal-rate charges; formal notice in consumer wording
  public        as standard without amicable; ECB rate + 8 points and 40 € per invoice
and the rules, first match wins: public_buyers (segment public), consumers (segment b2c),
key_accounts (tag key_account), risk_class_d (segment b2b and risk class D); none: standard/default.

Rates of the default policy used below: reference (ECB) 2026-H1 2.15 %; legal interest rate,
"autres cas" (the creditor is a business) 2026-H1 2.62 %.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from relance.core.errors import PolicyError
from relance.core.policy import load_policy
from tests.ladder_helpers import (
    customer,
    invoice,
    payment,
    query,
    run_days,
    send_action,
    set_action_status,
    steps,
    unit,
    write_source,
)


def _ladders(db: str) -> list[tuple]:
    """(customer_id, stage, ladder, ladder_rule, status) of every action, in date order."""
    return [
        tuple(r)
        for r in query(
            db,
            "select customer_id, stage, ladder, ladder_rule, status from dunning_actions "
            "order by as_of, customer_id, stage_rank",
        )
    ]


# --- the rules ---------------------------------------------------------------------------------

RULES_POLICY = """\
stages:
  - {code: due, offset_days: 0, channels: [email]}
  - {code: call_1, offset_days: 8, channels: [phone]}
ladders:
  - {name: by_list, stages: [due]}
  - {name: tagged, stages: [due]}
  - {name: consumer, stages: [due]}
  - {name: large, stages: [due]}
ladder_rules:
  - {name: listed, ladder: by_list, when: {customers: [C1]}}
  - {name: vip, ladder: tagged, when: {tag: vip}}
  - {name: b2c_only, ladder: consumer, when: {segment: [b2c]}}
  - {name: large_b2b, ladder: large, when: {segment: [b2b], min_amount: "1000.00"}}
min_gap_days: 1
aging_buckets: [{name: not_due, max_days: 0}, {name: overdue}]
"""


def test_rules_choose_the_first_match_each_kind_and_the_standard_ladder_by_default(tmp_path):
    """2026-03-02, every invoice due that day (the `due` stage of every ladder):
    C1 b2c with tag vip, listed  → `listed` (first rule; vip and b2c_only would match too);
    C2 b2b, tags " VIP , other"  → `vip` (tags are trimmed and lower-cased);
    C3 b2c                       → `b2c_only`;
    C4 b2b, owes 1500.00         → `large_b2b` (1500.00 ≥ 1000.00);
    C5 b2b, owes 999.99          → no rule: standard / default;
    C6 b2c, owes 1500.00         → `b2c_only` (large_b2b needs segment b2b)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(RULES_POLICY, encoding="utf-8")
    src = write_source(
        tmp_path / "src",
        customers=[
            customer("C1", segment="b2c", tags="vip"),
            customer("C2", tags=" VIP , other"),
            customer("C3", segment="b2c"),
            customer("C4"),
            customer("C5"),
            customer("C6", segment="b2c"),
        ],
        invoices=[
            invoice("I1", "C1", "2026-03-02"),
            invoice("I2", "C2", "2026-03-02"),
            invoice("I3", "C3", "2026-03-02"),
            invoice("I4", "C4", "2026-03-02", "1500.00"),
            invoice("I5", "C5", "2026-03-02", "999.99"),
            invoice("I6", "C6", "2026-03-02", "1500.00"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-02"], policy=str(policy))
    assert _ladders(db) == [
        ("C1", "due", "by_list", "listed", "planned"),
        ("C2", "due", "tagged", "vip", "planned"),
        ("C3", "due", "consumer", "b2c_only", "planned"),
        ("C4", "due", "large", "large_b2b", "planned"),
        ("C5", "due", "standard", "default", "planned"),
        ("C6", "due", "consumer", "b2c_only", "planned"),
    ]
    u = unit(db, "2026-03-02", "C5")
    assert (u["ladder"], u["ladder_rule"], u["ladder_risk_class"]) == ("standard", "default", None)
    assert (unit(db, "2026-03-02", "C4")["ladder"], unit(db, "2026-03-02", "C4")["ladder_rule"]) == (
        "large",
        "large_b2b",
    )


# --- risk class D --------------------------------------------------------------------------------


def _history(cid: str, days_late: int) -> tuple[list[dict], list[dict]]:
    """Three paid invoices of 100.00 due 2025-11-10, 2025-11-20 and 2025-12-01, paid `days_late`
    days after their due date (all within the 3 months before 2026-02-23: no trend)."""
    dues = ["2025-11-10", "2025-11-20", "2025-12-01"]
    invs = [invoice(f"{cid}-H{n}", cid, due) for n, due in enumerate(dues, start=1)]
    pays = [
        payment(
            f"{cid}-P{n}",
            cid,
            date.fromordinal(date.fromisoformat(due).toordinal() + days_late).isoformat(),
            "100.00",
            invoice_id=f"{cid}-H{n}",
        )
        for n, due in enumerate(dues, start=1)
    ]
    return invs, pays


def test_a_class_d_debtor_reaches_the_formal_notice_at_its_shorter_offset(tmp_path):
    """D1 paid its three invoices 50 days late: avg 50 → −40, 100 % late → −20, 100 % over 30
    days → −20, nothing overdue on 02-23 → score 20, class D (< 40) on every date → b2b_class_d.
    G1 paid the same invoices on their due date: score 100 − 0.1 × overdue share ≥ 90, class A →
    standard. Both owe 1000.00 due Mon 2026-03-02; runs on 02-23, 03-02, 03-05, 03-12, 03-16, 03-23:
      D1 (−7, 0, 3, 10, 14, 20): preventive (−7), due (0), call_1 (3), reminder_2 (10), call_2 (14),
         formal_notice on 03-23 (21 days late ≥ 20), pending approval;
      G1 (−5, 0, 8, 20, …): nothing on 02-23 (−7 < −5), preventive 03-02 (not overdue yet), due
         03-05, call_1 03-12, at target 03-16, reminder_2 03-23 (21 ≥ 20) — its notice comes at 30."""
    d_inv, d_pay = _history("D1", 50)
    g_inv, g_pay = _history("G1", 0)
    src = write_source(
        tmp_path / "src",
        customers=[customer("D1"), customer("G1")],
        invoices=[
            *d_inv,
            *g_inv,
            invoice("D1-I", "D1", "2026-03-02", "1000.00"),
            invoice("G1-I", "G1", "2026-03-02", "1000.00"),
        ],
        payments=[*d_pay, *g_pay],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-02-23", "2026-03-02", "2026-03-05", "2026-03-12", "2026-03-16", "2026-03-23"])
    assert steps(db, "D1") == [
        ("2026-02-23", "preventive"),
        ("2026-03-02", "due"),
        ("2026-03-05", "call_1"),
        ("2026-03-12", "reminder_2"),
        ("2026-03-16", "call_2"),
        ("2026-03-23", "formal_notice"),
    ]
    assert steps(db, "G1") == [
        ("2026-03-02", "preventive"),
        ("2026-03-05", "due"),
        ("2026-03-12", "call_1"),
        ("2026-03-23", "reminder_2"),
    ]
    assert {(r[2], r[3]) for r in _ladders(db) if r[0] == "D1"} == {("b2b_class_d", "risk_class_d")}
    assert {(r[2], r[3]) for r in _ladders(db) if r[0] == "G1"} == {("standard", "default")}
    notice = query(db, "select status from dunning_actions where action_id = 'D1|EUR|1|formal_notice'")
    assert notice == [("pending_approval",)]
    u = unit(db, "2026-03-23", "D1")
    assert (u["ladder"], u["ladder_rule"], u["ladder_risk_class"]) == ("b2b_class_d", "risk_class_d", "D")
    assert unit(db, "2026-03-23", "G1")["ladder_risk_class"] == "A"
    # the profile of each run date was built for the rules (run_days does not measure)
    assert query(db, "select count(distinct as_of) from debtor_profile") == [(6,)]


def _mover_source(tmp_path):
    """M1 owes 1000.00 due Fri 2026-02-20. History: O1–O3 (100.00 each, due and paid 2025-03-20,
    on time) and L1–L3 (100.00 each, due 2025-06-01, 06-15, 07-01, paid 50 days late: 07-21, 08-04,
    08-20 — in the 9 months before the last 3: no trend).
      Until 2026-03-19, 6 paid in the 12 months: avg 25 days, 50 % late, 50 % over 30 days, and
      (once 2026-I is overdue) 100 % overdue → 100 − 25 − 10 − 10 − 10 = 45: class C → standard.
      From 2026-03-20 the on-time ones (paid 2025-03-20, not after D − 12 months) leave the window:
      3 paid, all 50 days late → 100 − 40 − 20 − 20 − 10 = 10: class D → b2b_class_d."""
    on_time = [invoice(f"O{n}", "M1", "2025-03-20") for n in (1, 2, 3)]
    late_dues = ["2025-06-01", "2025-06-15", "2025-07-01"]
    late = [invoice(f"L{n}", "M1", due) for n, due in enumerate(late_dues, start=1)]
    pays = [payment(f"PO{n}", "M1", "2025-03-20", "100.00", invoice_id=f"O{n}") for n in (1, 2, 3)] + [
        payment(f"PL{n}", "M1", paid, "100.00", invoice_id=f"L{n}")
        for n, paid in enumerate(["2025-07-21", "2025-08-04", "2025-08-20"], start=1)
    ]
    return write_source(
        tmp_path / "src",
        customers=[customer("M1")],
        invoices=[*on_time, *late, invoice("2026-I", "M1", "2026-02-20", "1000.00")],
        payments=pays,
    )


def test_a_unit_moved_to_class_d_after_call_2_goes_on_from_there_and_never_skips_the_notice(tmp_path):
    """Standard (class C): preventive 02-16 (−4), due 02-20, call_1 03-02 (10), reminder_2 03-12
    (20), call_2 03-17 (25); 03-19 (27): at target (the standard notice comes at 30).
    03-20 (28), class D: the next stage of b2b_class_d above call_2 (rank 5) is the formal notice
    (offset 20 ≤ 28): taken that day — never preventive, due, call_1 or reminder_2 again.
    The notice is rejected (never sent); 04-07 (46 days: b2b_class_d's litigation offset 45 and
    amicable's 30 are reached): nothing above the notice without a sent notice."""
    db = str(tmp_path / "r.duckdb")
    run_days(
        _mover_source(tmp_path),
        db,
        ["2026-02-16", "2026-02-20", "2026-03-02", "2026-03-12", "2026-03-17", "2026-03-19", "2026-03-20"],
    )
    assert steps(db, "M1") == [
        ("2026-02-16", "preventive"),
        ("2026-02-20", "due"),
        ("2026-03-02", "call_1"),
        ("2026-03-12", "reminder_2"),
        ("2026-03-17", "call_2"),
        ("2026-03-20", "formal_notice"),
    ]
    assert [(r[1], r[2], r[3]) for r in _ladders(db)] == [
        ("preventive", "standard", "default"),
        ("due", "standard", "default"),
        ("call_1", "standard", "default"),
        ("reminder_2", "standard", "default"),
        ("call_2", "standard", "default"),
        ("formal_notice", "b2b_class_d", "risk_class_d"),
    ]
    u19 = unit(db, "2026-03-19", "M1")
    assert (u19["ladder"], u19["ladder_risk_class"], u19["no_action_reason"]) == ("standard", "C", "at_target")
    assert unit(db, "2026-03-20", "M1")["ladder_risk_class"] == "D"

    set_action_status(db, "M1|EUR|1|formal_notice", "rejected")
    run_days(None, db, ["2026-04-07"])
    assert steps(db, "M1")[-1] == ("2026-03-20", "formal_notice")
    u = unit(db, "2026-04-07", "M1")
    assert (u["ladder"], u["target_stage"], u["current_stage"]) == ("b2b_class_d", "litigation", "formal_notice")
    assert (u["no_action_reason"], u["wait_reason"]) == ("formal_notice_not_sent", "formal_notice_not_sent")


def test_a_backfill_chooses_the_ladder_point_in_time(tmp_path):
    """The same source replayed (`relance backfill`'s replay: the source ingested once, with every
    payment, then each date aged, laddered and measured) from 03-16 to 03-20: on 03-19 the profile
    of 03-19 (class C: the 2025-03-20 payments still in its 12 months) → standard; on 03-20 class
    D → b2b_class_d. The replay starts with no history, 24 days late on 03-16: the due stage (the
    preventive is passed over once overdue), min gap on 03-17 and 03-18, call_1 on 03-19 (27 days);
    03-20, class D: the next stage above call_1 would be reminder_2, but the min gap holds it."""
    from flows.backfill import replay
    from tasks.ingest import ingest

    src = _mover_source(tmp_path)
    db = str(tmp_path / "r.duckdb")
    ingest(src, db, date(2026, 3, 20))
    replay(db, date(2026, 3, 16), date(2026, 3, 20))
    rows = query(
        db,
        "select strftime(as_of, '%Y-%m-%d'), ladder_risk_class, ladder from unit_stage "
        "where customer_id = 'M1' order by as_of",
    )
    assert rows == [
        ("2026-03-16", "C", "standard"),
        ("2026-03-17", "C", "standard"),
        ("2026-03-18", "C", "standard"),
        ("2026-03-19", "C", "standard"),
        ("2026-03-20", "D", "b2b_class_d"),
    ]
    acts = query(
        db,
        "select strftime(as_of, '%Y-%m-%d'), stage, ladder from dunning_actions where customer_id = 'M1' order by as_of",
    )
    assert acts == [("2026-03-16", "due", "standard"), ("2026-03-19", "call_1", "standard")]
    assert unit(db, "2026-03-20", "M1")["no_action_reason"] == "min_gap"


# --- key accounts ----------------------------------------------------------------------------------


def test_key_accounts_call_early_and_every_letter_waits_for_approval(tmp_path):
    """Invoices of 500.00 due Mon 2026-03-02. K1 (tags " Key_Account, vip": trimmed, lower-cased; no
    email, no phone) and B1 (the same contacts, no tag: standard); K2 (key_account, every contact).
    03-03 (1 day late: the preventive is passed over): the due stage (email). K1: no email → a
    letter instead → the action and its letter wait for approval (letters_require_approval). B1:
    the same letter, planned. K2: an email, planned.
    03-09 (7): K1 (approved meanwhile) takes call_1 at its offset 5 (standard: 8) — no phone → a
    letter → pending approval again; B1 waits (call_1 at 8); K2 takes call_1: a phone call, planned."""
    src = write_source(
        tmp_path / "src",
        customers=[
            customer("K1", tags=" Key_Account, vip", email="", phone=""),
            customer("B1", email="", phone=""),
            customer("K2", tags="key_account"),
        ],
        invoices=[invoice(f"{c}-I", c, "2026-03-02", "500.00") for c in ("K1", "B1", "K2")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-03"])
    sent = query(
        db,
        "select a.customer_id, a.stage, a.ladder, a.status, d.channel, d.status from dunning_actions a "
        "join deliveries d using (action_id) order by a.as_of, a.customer_id",
    )
    assert sent == [
        ("B1", "due", "standard", "planned", "letter", "planned"),
        ("K1", "due", "key_accounts", "pending_approval", "letter", "pending_approval"),
        ("K2", "due", "key_accounts", "planned", "email", "planned"),
    ]
    set_action_status(db, "K1|EUR|1|due", "approved")
    run_days(None, db, ["2026-03-09"])
    later = query(
        db,
        "select a.customer_id, a.stage, a.ladder_rule, a.status, d.channel, d.status from dunning_actions a "
        "join deliveries d using (action_id) where a.as_of = '2026-03-09' order by a.customer_id",
    )
    assert later == [
        ("K1", "call_1", "key_accounts", "pending_approval", "letter", "pending_approval"),
        ("K2", "call_1", "key_accounts", "planned", "phone", "planned"),
    ]
    assert unit(db, "2026-03-09", "B1")["no_action_reason"] == "at_target"


# --- b2c: the legal interest rate from the formal notice ------------------------------------------

CLIMB = ["2026-01-28", "2026-02-02", "2026-02-10", "2026-02-23", "2026-02-27", "2026-03-04"]
"""Due Mon 2026-02-02: preventive (−5), due (0), call_1 (8), reminder_2 (21), call_2 (25),
formal_notice (30, 03-04): one step a run."""


def _climb(tmp_path, segment: str) -> str:
    src = write_source(
        tmp_path / "src",
        customers=[customer("X1", segment=segment)],
        invoices=[invoice("X1-I", "X1", "2026-02-02", "1000.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, CLIMB)
    assert [s for _, s in steps(db, "X1")] == [
        "preventive",
        "due",
        "call_1",
        "reminder_2",
        "call_2",
        "formal_notice",
    ]
    return db


def test_b2c_formal_notice_states_the_legal_rate_no_indemnity_and_no_interest_yet(tmp_path):
    """A consumer (b2c ladder, rule consumers): the notice of 2026-03-04 states the legal interest
    rate of 2026-H1 for the other cases (2.62 %), 0 interest (interest runs from the notice, Code
    civil 1344-1) and no indemnity: interest 0.00, indemnity 0.00, total 0.00."""
    db = _climb(tmp_path, "b2c")
    assert query(
        db,
        "select ladder, ladder_rule, interest_amount, indemnity_amount, charges_total from dunning_actions "
        "where stage = 'formal_notice'",
    ) == [("b2c", "consumers", D("0.00"), D("0.00"), D("0.00"))]
    assert query(
        db,
        "select invoice_id, half_year, days, reference_rate, annual_rate, interest from action_charge_periods",
    ) == [("X1-I", "2026-H1", 0, D("2.6200"), D("2.6200"), D("0E-10"))]
    assert load_policy(None).stage("formal_notice", "b2c").wording == "formal_notice_consumer"


def test_b2c_litigation_charges_legal_interest_from_the_sent_notice(tmp_path):
    """The notice of 03-04 is sent; amicable 03-19 (45 days); litigation 04-03 (60 days): interest on
    1000.00 from 03-05 (the day after the notice) to 04-03 = 27 + 3 = 30 days at 2.62 %:
    1000 × 2.62 × 30 / 36500 = 78600 / 36500 = 2.1534… → 2.15; no indemnity."""
    db = _climb(tmp_path, "b2c")
    send_action(db, "X1|EUR|1|formal_notice")
    run_days(None, db, ["2026-03-19", "2026-04-03"])
    assert [s for _, s in steps(db, "X1")][-2:] == ["amicable", "litigation"]
    assert query(
        db,
        "select interest_amount, indemnity_amount, charges_total, interest_from from dunning_actions "
        "where stage = 'litigation'",
    ) == [(D("2.15"), D("0.00"), D("2.15"), date(2026, 3, 5))]
    assert query(
        db,
        "select period_start, period_end, days, annual_rate from action_charge_periods "
        "where action_id = 'X1|EUR|1|litigation'",
    ) == [(date(2026, 3, 5), date(2026, 4, 3), 30, D("2.6200"))]


def test_public_buyers_owe_ecb_plus_8_points_and_40_euros_and_never_get_a_visit(tmp_path):
    """A public buyer (ladder public): the notice of 03-04 charges 1000.00 × (2.15 + 8) % from 02-03
    to 03-04 = 26 + 4 = 30 days: 1000 × 10.15 × 30 / 36500 = 304500 / 36500 = 8.3424… → 8.34,
    and 40.00 EUR: total 48.34. Sent; 03-19 (45 days): no amicable stage in this ladder (at target);
    04-03 (60 days): litigation, 60 days (26 + 31 + 3): 1000 × 10.15 × 60 / 36500 = 16.6849… → 16.68
    + 40.00 = 56.68."""
    db = _climb(tmp_path, "public")
    send_action(db, "X1|EUR|1|formal_notice")
    run_days(None, db, ["2026-03-19", "2026-04-03"])
    assert query(
        db,
        "select stage, ladder, ladder_rule, interest_amount, indemnity_amount, indemnity_currency, charges_total "
        "from dunning_actions where interest_amount is not null order by stage_rank",
    ) == [
        ("formal_notice", "public", "public_buyers", D("8.34"), D("40.00"), "EUR", D("48.34")),
        ("litigation", "public", "public_buyers", D("16.68"), D("40.00"), "EUR", D("56.68")),
    ]
    assert query(db, "select distinct annual_rate from action_charge_periods") == [(D("10.1500"),)]
    assert "amicable" not in [s for _, s in steps(db, "X1")]
    assert unit(db, "2026-03-19", "X1")["no_action_reason"] == "at_target"


# --- validation --------------------------------------------------------------------------------------

BASE = """\
stages:
  - {code: due, offset_days: 0, channels: [email]}
  - {code: call_1, offset_days: 8, channels: [phone]}
  - {code: formal_notice, offset_days: 30, channels: [registered_letter]}
  - {code: litigation, offset_days: 60, channels: [handoff]}
aging_buckets: [{name: not_due, max_days: 0}, {name: overdue}]
"""


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            "ladders: [{name: x, stages: [due, call_9]}]",
            "ladders[0].stages[1].code: unknown stage 'call_9' (stages: has due, call_1, formal_notice, litigation)",
        ),
        (
            "ladders: [{name: x, stages: [call_1, due]}]",
            "ladders[0].stages[1].code: 'due' must come after 'call_1', in the order of stages: (listed once each)",
        ),
        (
            "ladders: [{name: x, stages: [due, {code: call_1, offset_days: -1}]}]",
            "ladders[0].stages[1].offset_days: -1 must be greater than the previous stage's 0 (offsets must increase)",
        ),
        (
            "ladders: [{name: x, stages: [due, litigation]}]",
            "ladders[0].stages: 'litigation' comes after the legal notice 'formal_notice', which the ladder must then include",
        ),
        ("ladders: [{name: standard, stages: [due]}]", "ladders[0].name: 'standard' is the ladder of `stages:`"),
        (
            "ladder_rules: [{name: r, ladder: nope}]",
            "ladder_rules[0].ladder: unknown ladder 'nope' (ladders: standard)",
        ),
        (
            "ladders: [{name: x, stages: [due], charges: {kind: legal_rate, indemnity_per_invoice: '40.00'}}]",
            "ladders[0].charges: indemnity_per_invoice: only a commercial rule has an indemnity (kind is legal_rate)",
        ),
        (
            "ladders: [{name: x, stages: [due], charges: {kind: legal_rate}}]",
            "legal_interest_rates.rates: a ladder charges at the legal rate, the table is empty",
        ),
        (
            "ladder_rules: [{name: r, ladder: standard, when: {tag: Key Account}}]",
            "ladder_rules[0].when.tag: String should match pattern",
        ),
    ],
)
def test_policy_ladder_errors_are_one_line_naming_the_key(tmp_path, extra, expected):
    path = tmp_path / "policy.yaml"
    path.write_text(BASE + extra + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    # the loader's header, then one line: the key and the problem
    header, *problems = str(e.value).splitlines()
    assert header == f"policy {path} is not valid:"
    assert len(problems) == 1 and expected in problems[0], problems


# --- wording -------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("channel", ["registered_letter", "email"])
def test_consumer_and_public_formal_notices_render_their_own_wording(lang, channel):
    """The sample notice (three invoices, 1789.66 in principal, 2026-H1): the consumer's states the
    legal interest rate of the half-year (2.62 %), no L441-10, no 40 € and no indemnity line; the
    public buyer's cites the Code de la commande publique, ECB + 8 points (10.15 %) and the 40 €
    (3 × 40.00 = 120.00)."""
    from datetime import date as day

    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import Renderer, message_context, sample_row

    cfg = load_channels_config()
    r = Renderer(cfg)

    def render(ladder: str) -> str:
        ctx = message_context(sample_row("formal_notice", channel, lang, ladder=ladder), cfg, day(2026, 3, 16), r.i18n)
        ctx.update(anchor="L0", formal=channel == "registered_letter")
        if channel == "email":
            mail = r.email(ctx)
            return mail.text + mail.html
        return r.letter(ctx)

    consumer, public = render("b2c"), render("public")
    assert "1344-1" in consumer and "L441-10" not in consumer
    assert "40 €" not in consumer and "€40" not in consumer
    assert ("2,62" if lang == "fr" else "2.62") in consumer
    assert ("taux de l'intérêt légal" if lang == "fr" else "legal interest rate") in consumer.replace("&#39;", "'")
    assert ("Indemnité forfaitaire" if lang == "fr" else "Fixed recovery indemnity") not in consumer
    assert "L2192-13" in public and "L441-10" not in public
    assert ("10,15" if lang == "fr" else "10.15") in public
    assert ("120,00" if lang == "fr" else "120.00") in public


# --- sample data: every default ladder used -----------------------------------------------------


@pytest.mark.slow
def test_a_90_day_replay_on_sample_data_uses_every_default_ladder(tmp_path):
    """`relance sample-data` (300 customers: public buyers, consumers, key accounts and bad payers)
    then `relance backfill` over the 90 days up to its as_of: the actions, counted by ladder, use
    each of the five default ladders at least once, each through its own rule."""
    from typer.testing import CliRunner

    from relance.cli import app

    src, db = tmp_path / "src", tmp_path / "r.duckdb"
    runner = CliRunner()
    made = runner.invoke(
        app, ["sample-data", "--out", str(src), "--customers", "300", "--seed", "7", "--as-of", "2026-03-31"]
    )
    assert made.exit_code == 0, made.output
    done = runner.invoke(
        app,
        [
            "backfill",
            "--start",
            "2026-01-01",
            "--end",
            "2026-03-31",
            "--source",
            str(src),
            "--db",
            str(db),
            "--report-dir",
            str(tmp_path / "reports"),
        ],
    )
    assert done.exit_code == 0, done.output
    by_ladder = dict(query(str(db), "select ladder, count(*) from dunning_actions group by ladder"))
    assert set(by_ladder) == {"standard", "b2b_class_d", "key_accounts", "b2c", "public"}, by_ladder
    rules = dict(query(str(db), "select ladder, any_value(ladder_rule) from dunning_actions group by ladder"))
    assert rules == {
        "standard": "default",
        "b2b_class_d": "risk_class_d",
        "key_accounts": "key_accounts",
        "b2c": "consumers",
        "public": "public_buyers",
    }
    # no visit for a public buyer, no L441-10 indemnity for a consumer
    assert query(str(db), "select count(*) from dunning_actions where ladder = 'public' and stage = 'amicable'") == [
        (0,)
    ]
    assert query(
        str(db), "select count(*) from dunning_actions where ladder = 'b2c' and coalesce(indemnity_amount, 0) <> 0"
    ) == [(0,)]


def test_tags_are_optional_and_never_reject_a_customer(tmp_path):
    """customers.csv without a tags column: every customer loads, with no tags. With one: trimmed,
    lower-cased, empty labels dropped; a PostgreSQL text[] exported as {a,b} reads the same."""
    from tasks.ingest import ingest

    old = tmp_path / "old"
    old.mkdir()
    (old / "customers.csv").write_text("customer_id,name,segment\nC1,Un,b2b\nC2,Deux,public\n", encoding="utf-8")
    (old / "invoices.csv").write_text(
        "invoice_id,customer_id,issue_date,due_date,amount\nI1,C1,2026-01-01,2026-02-01,10.00\n", encoding="utf-8"
    )
    ingest(str(old), str(tmp_path / "old.duckdb"), date(2026, 3, 2))
    assert query(str(tmp_path / "old.duckdb"), "select customer_id, segment, tags from stg_customers order by 1") == [
        ("C1", "b2b", None),
        ("C2", "public", None),
    ]
    new = write_source(
        tmp_path / "new",
        customers=[
            customer("C1", tags=" Key_Account ,, VIP "),
            customer("C2", tags="{key_account,vip}"),
            customer("C3"),
        ],
        invoices=[invoice("I1", "C1", "2026-02-01")],
    )
    ingest(new, str(tmp_path / "new.duckdb"), date(2026, 3, 2))
    assert query(str(tmp_path / "new.duckdb"), "select customer_id, tags from stg_customers order by 1") == [
        ("C1", "key_account,vip"),
        ("C2", "key_account,vip"),
        ("C3", None),
    ]


def test_a_key_account_letter_replacing_an_email_at_dispatch_waits_for_approval(tmp_path):
    """K2 (key_account) had an email on 03-03: its due email is planned. Its address is gone from the
    source when the dispatch runs: the email falls back to a letter, which waits for approval
    (letters_require_approval) instead of leaving that night. B2 (no tag), the same: its letter leaves."""
    from datetime import UTC, datetime

    from tasks.dispatch import dispatch

    invoices = [invoice(f"{c}-I", c, "2026-03-02", "500.00") for c in ("K2", "B2")]
    db = str(tmp_path / "r.duckdb")
    run_days(
        write_source(tmp_path / "a", customers=[customer("K2", tags="key_account"), customer("B2")], invoices=invoices),
        db,
        ["2026-03-03"],
    )
    run_days(
        write_source(
            tmp_path / "b",
            customers=[customer("K2", tags="key_account", email=""), customer("B2", email="")],
            invoices=invoices,
        ),
        db,
        ["2026-03-03"],
    )
    dispatch(db, date(2026, 3, 3), str(tmp_path / "out"), now=datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    assert query(
        db,
        "select action_id, channel, status from deliveries where action_id like '%|due' order by action_id",
    ) == [("B2|EUR|1|due", "letter", "sent"), ("K2|EUR|1|due", "letter", "pending_approval")]
