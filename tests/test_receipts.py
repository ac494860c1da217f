"""Registered letters' receipts (issue 15 §1): the tracking CSV sets the formal notice's receipt and
deadline (unit_stage, the dossier), the step after the notice waits for the deadline — or, no
receipt known, receipt_wait_days after the letter left —; a refused or unclaimed letter counts as
received on its first presentation; a print batch reference names a letter; metrics of returns
and time to receipt. Dates worked by hand (2026: Mon 03-23, Easter Monday 04-06 is a French
public holiday; Good Friday 04-03 is not)."""

from __future__ import annotations

from datetime import UTC, date
from decimal import Decimal

from tests.ladder_helpers import customer, invoice, query, run_days, send_action, steps, unit, write_source

NOTICE = "formal_notice"


def _four_notices(tmp_path):
    """C1…C4 owe 800.00 due Fri 01-30: each climbs to the formal notice on Mon 03-23 (approved, and
    its registered letter sent that night)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer(c) for c in ("C1", "C2", "C3", "C4")],
        invoices=[invoice(f"I{n}", f"C{n}", "2026-01-30", "800.00") for n in range(1, 5)],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23"])
    for c in ("C1", "C2", "C3", "C4"):
        assert steps(db, c)[-1] == ("2026-03-23", NOTICE)
        send_action(db, f"{c}|EUR|1|{NOTICE}")
    return src, db


def _policy(tmp_path, wait_days: int) -> str:
    """The default policy with receipt_wait_days set (the default, 0, does not wait without a receipt)."""
    from pathlib import Path

    text = Path("policies/default.yaml").read_text(encoding="utf-8")
    assert "receipt_wait_days: 0" in text
    path = tmp_path / f"wait{wait_days}.yaml"
    path.write_text(text.replace("receipt_wait_days: 0", f"receipt_wait_days: {wait_days}"), encoding="utf-8")
    return str(path)


def _import(tmp_path, db, text: str, **kwargs) -> dict:
    from tasks.events import import_tracking

    path = tmp_path / "tracking.csv"
    path.write_text(text, encoding="utf-8")
    return import_tracking(db, path, **kwargs)


def test_the_receipt_sets_the_deadline_and_the_next_step_waits_for_it(tmp_path):
    """C1: received Wed 03-25 → deadline Thu 04-02 (8 days) → amicable Fri 04-03, litigation Tue 04-07.
    C2: received late, Wed 04-01 → deadline Thu 04-09 → amicable Fri 04-10 (past the 15 days).
    C3: no tracking: waits 15 days after 03-23 → amicable Tue 04-07 (04-06 is Easter Monday).
    C4: refused on its first presentation, Thu 03-26: received that day → deadline Fri 04-03 →
    amicable on the next business day, Tue 04-07."""
    _, db = _four_notices(tmp_path)
    r = _import(
        tmp_path,
        db,
        "reference;tracking_number;deposit_date;receipt_date;return_reason;presentation_date\n"
        f"C1|EUR|1|{NOTICE}|registered_letter;1A001;2026-03-24;2026-03-25;;\n"
        f"C2|EUR|1|{NOTICE}|registered_letter;1A002;2026-03-24;2026-04-01;;\n"
        f"C4|EUR|1|{NOTICE}|registered_letter;1A004;2026-03-24;returned;refusé;2026-03-26\n",
    )
    assert r["loaded"] == 3 and r["unknown"] == []
    assert query(
        db,
        "select delivery_id, received_on, presented_on, outcome, return_reason, deadline_on "
        "from postal_tracking order by 1",
    ) == [
        (f"C1|EUR|1|{NOTICE}|registered_letter", date(2026, 3, 25), None, "received", None, date(2026, 4, 2)),
        (f"C2|EUR|1|{NOTICE}|registered_letter", date(2026, 4, 1), None, "received", None, date(2026, 4, 9)),
        (
            f"C4|EUR|1|{NOTICE}|registered_letter",
            date(2026, 3, 26),
            date(2026, 3, 26),
            "returned",
            "refused",
            date(2026, 4, 3),
        ),
    ]

    run_days(
        None,
        db,
        ["2026-03-30", "2026-04-02", "2026-04-03", "2026-04-06", "2026-04-07", "2026-04-09", "2026-04-10"],
        policy=_policy(tmp_path, 15),
    )
    assert steps(db, "C1")[-2:] == [("2026-04-03", "amicable"), ("2026-04-07", "litigation")]
    assert steps(db, "C2")[-2:] == [("2026-03-23", NOTICE), ("2026-04-10", "amicable")]
    assert steps(db, "C3")[-2:] == [("2026-04-07", "amicable"), ("2026-04-10", "litigation")]
    assert steps(db, "C4")[-2:] == [("2026-04-07", "amicable"), ("2026-04-10", "litigation")]

    # unit_stage shows the receipt and the deadline, and why the unit waits
    u = unit(db, "2026-04-02", "C1")
    assert (u["notice_sent_on"], u["notice_received_on"], u["notice_deadline"]) == (
        date(2026, 3, 24),
        date(2026, 3, 25),
        date(2026, 4, 2),
    )
    assert (u["no_action_reason"], u["wait_reason"]) == ("notice_deadline", "notice_deadline")
    assert u["wait_detail"] == (
        "the formal notice was received on 2026-03-25, its deadline runs to 2026-04-02: amicable from 2026-04-03"
    )
    u = unit(db, "2026-04-07", "C2")
    assert (u["target_stage"], u["no_action_reason"], u["notice_deadline"]) == (
        "litigation",
        "notice_deadline",
        date(2026, 4, 9),
    )
    u = unit(db, "2026-04-03", "C3")
    assert (u["notice_sent_on"], u["notice_received_on"], u["notice_deadline"]) == (date(2026, 3, 23), None, None)
    assert u["wait_detail"] == (
        "no receipt known for the formal notice sent on 2026-03-23: amicable waits for it "
        "until 2026-04-07 (receipt_wait_days 15)"
    )
    assert unit(db, "2026-04-03", "C4")["no_action_reason"] == "notice_deadline"  # deadline day: still waiting
    assert unit(db, "2026-04-06", "C4")["no_action_reason"] == "non_business_day"  # deadline passed; a holiday


def test_receipt_wait_days_bounds_the_wait_without_a_receipt(tmp_path):
    """receipt_wait_days: 5 in the policy, a letter deposited Tue 03-24 and still in transit: the next
    step waits until 03-29 (a Sunday) → amicable on Mon 03-30."""
    _, db = _four_notices(tmp_path)
    policy = _policy(tmp_path, 5)
    _import(
        tmp_path, db, f"reference,tracking_number,deposit_date\nC1|EUR|1|{NOTICE}|registered_letter,1A001,2026-03-24\n"
    )
    run_days(None, db, ["2026-03-26", "2026-03-27", "2026-03-30"], policy=str(policy))
    assert unit(db, "2026-03-27", "C1")["no_action_reason"] == "notice_deadline"
    assert steps(db, "C1")[-1] == ("2026-03-30", "amicable")
    assert steps(db, "C2")[-1] == ("2026-03-30", "amicable")  # no tracking: 03-23 + 5 = 03-28, first run after


def test_by_default_a_known_receipt_is_awaited_and_an_unknown_one_is_not(tmp_path):
    """The default policy (receipt_wait_days 0): C1 received Wed 03-25 → deadline Thu 04-02 → no step
    on 03-26 nor 04-02, amicable Fri 04-03; C2, no tracking: the contract's climb, amicable on Thu
    03-26 (+55 ≥ 45, three days after the notice), litigation Thu 04-02 (+62 ≥ 60, 800.00 ≥ 500.00)."""
    _, db = _four_notices(tmp_path)
    _import(
        tmp_path,
        db,
        "reference,tracking_number,deposit_date,receipt_date\n"
        f"C1|EUR|1|{NOTICE}|registered_letter,1A001,2026-03-24,2026-03-25\n",
    )
    run_days(None, db, ["2026-03-26", "2026-04-02", "2026-04-03"])
    assert unit(db, "2026-04-02", "C1")["no_action_reason"] == "notice_deadline"
    assert steps(db, "C1")[-1] == ("2026-04-03", "amicable")
    assert steps(db, "C2")[-3:] == [("2026-03-23", NOTICE), ("2026-03-26", "amicable"), ("2026-04-02", "litigation")]


def test_a_print_batch_reference_names_the_letter_through_the_manifest(tmp_path):
    """The mail room's export names letters by print batch (as the dossier and the manifest do) and the
    letter's sequence in it, or its tracking number as written in the manifest."""
    import csv

    from tasks.dispatch.post import MANIFEST_COLUMNS

    _, db = _four_notices(tmp_path)
    folder = tmp_path / "outbox" / "2026-03-23" / "registered_letter"
    folder.mkdir(parents=True)
    with (folder / "manifest-registered_letter.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for seq, c in enumerate(("C1", "C2", "C3"), start=1):
            w.writerow(
                {
                    "sequence": seq,
                    "delivery_id": f"{c}|EUR|1|{NOTICE}|registered_letter",
                    "tracking_number": "1A003" if c == "C3" else "",
                }
            )
    r = _import(
        tmp_path,
        db,
        "batch_reference,sequence,tracking_number,deposit_date,receipt_date\n"
        "2026-03-23/registered_letter/print-batch-registered_letter.pdf,2,1A002,2026-03-24,2026-03-27\n"
        "print-batch-registered_letter.pdf,,1A003,2026-03-24,2026-03-26\n"
        "2026-03-23/registered_letter/print-batch-registered_letter.pdf,9,1A009,2026-03-24,2026-03-26\n",
    )
    assert r["loaded"] == 2
    assert r["unknown"] == ["2026-03-23/registered_letter/print-batch-registered_letter.pdf"]
    assert query(
        db, "select delivery_id, batch_reference, tracking_number, deadline_on from postal_tracking order by 1"
    ) == [
        (
            f"C2|EUR|1|{NOTICE}|registered_letter",
            "2026-03-23/registered_letter/print-batch-registered_letter.pdf",
            "1A002",
            date(2026, 4, 4),
        ),
        (f"C3|EUR|1|{NOTICE}|registered_letter", "print-batch-registered_letter.pdf", "1A003", date(2026, 4, 3)),
    ]


def test_metrics_count_returns_and_the_median_time_to_receipt(tmp_path):
    """Letters of the actions of 03-12 … 04-10: C1 received 1 day after deposit, C2 8 days, C4 refused
    (a return), C3 never reported. letters_returned_30d 1; rate 1 of 3 known = 33.3333 %; median days
    to receipt of (1, 8) = 4.5."""
    from tasks.measure import measure

    _, db = _four_notices(tmp_path)
    _import(
        tmp_path,
        db,
        "reference;tracking_number;deposit_date;receipt_date;return_reason;presentation_date\n"
        f"C1|EUR|1|{NOTICE}|registered_letter;1A001;2026-03-24;2026-03-25;;\n"
        f"C2|EUR|1|{NOTICE}|registered_letter;1A002;2026-03-24;2026-04-01;;\n"
        f"C4|EUR|1|{NOTICE}|registered_letter;1A004;2026-03-24;returned;unclaimed;2026-03-26\n",
    )
    run_days(None, db, ["2026-04-10"])
    measure(db, date(2026, 4, 10))
    got = dict(
        ((m, v), value)
        for m, v, value in query(
            db,
            "select metric, dimension_value, value from recovery_metrics where as_of = '2026-04-10' "
            "and metric in ('letters_returned_30d', 'letters_returned_rate_30d', 'median_days_to_receipt_30d')",
        )
    )
    assert got == {
        ("letters_returned_30d", "registered_letter"): Decimal("1.0000"),
        ("letters_returned_rate_30d", "registered_letter"): Decimal("33.3333"),
        ("median_days_to_receipt_30d", "registered_letter"): Decimal("4.5000"),
    }


def test_the_dossier_shows_a_refused_notice_as_received_on_its_presentation(tmp_path):
    """The formal notice's letter was refused when first presented on Thu 03-05: the litigation
    dossier's actions.csv gives 03-05 as its receipt, the deadline 03-13, and the reason."""
    import csv
    from datetime import datetime

    from tasks.dispatch import dispatch
    from tasks.dispatch.ledger import unit_stem
    from tests.fakes.scenario import action, build, customer, invoice

    day = date(2026, 3, 16)
    db = build(
        tmp_path,
        customers=[customer("C1")],
        invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "100.00")],
        as_of=day,
        actions=[
            action(
                "N1",
                "C1",
                NOTICE,
                ["F1"],
                as_of=date(2026, 3, 2),
                deliveries=[("N1|registered_letter", "registered_letter", "sent")],
                charges={"per_invoice": {"F1": ("1.00", "40.00")}},
            ),
            action(
                "L1",
                "C1",
                "litigation",
                ["F1"],
                deliveries=[("L1|handoff", "handoff")],
                charges={"per_invoice": {"F1": ("2.00", "40.00")}},
            ),
        ],
    )
    _import(
        tmp_path,
        db,
        "reference,tracking_number,deposit_date,receipt_date,return_reason\n"
        "N1|registered_letter,1A9,2026-03-03,2026-03-05,unclaimed\n",
    )
    dispatch(str(db), day, str(tmp_path / "outbox"), now=datetime(2026, 3, 16, 9, tzinfo=UTC), auto_approve=True)
    folder = tmp_path / "outbox" / "2026-03-16" / "handoff" / unit_stem("C1", "EUR")
    notice = [r for r in csv.DictReader(open(folder / "actions.csv", encoding="utf-8")) if r["action_id"] == "N1"]
    assert [
        (r["tracking_number"], r["received_on"], r["deadline_on"], r["return_reason"], r["delivery_state"])
        for r in notice
    ] == [("1A9", "2026-03-05", "2026-03-13", "unclaimed", "undelivered")]
