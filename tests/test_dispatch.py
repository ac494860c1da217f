"""Dispatch into the outbox: every channel's files, the ledger (once only, in doubt, resolve),
approval, contact fallbacks, stale deliveries, worklists and handoff dossiers."""

from __future__ import annotations

import csv
import email
from datetime import UTC, date, datetime
from email import policy as email_policy

import duckdb
import pytest

from relance.core.errors import UserError
from tasks.dispatch import approve, dispatch, ledger, resolve
from tasks.dispatch.ledger import file_stem, unit_stem
from tests.fakes.scenario import (
    action,
    add_actions,
    build,
    customer,
    deliveries,
    events,
    invoice,
    pdf_text,
)

AS_OF = date(2026, 3, 16)
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)

CUSTOMERS = [
    customer("C1", "Boulangerie Martin SARL", collector="Julie"),
    customer(
        "C2",
        "Acme Ltd",
        language="en",
        country="GB",
        street="1 High Street",
        postal_code="SW1A 1AA",
        city="London",
        phone="+447700900123",
        collector="Julie",
    ),
    customer(
        "C3", "Garage Petit", email="jean..petit@garage.example", collector="Marc"
    ),  # SendGrid would refuse it: ingest drops it
    customer("C4", "Sans Adresse SAS", email="", street="", postal_code="", city=""),
    customer("C5", "Café du Port", collector=""),
    customer("C6", "Vieille Dette SA", collector="Julie"),
]
INVOICES = [
    invoice("F1", "C1", "2026-01-05", "2026-02-04", "1234.56"),
    invoice("F2", "C1", "2026-01-20", "2026-02-14", "80.00"),
    invoice("F3", "C2", "2026-01-05", "2026-02-04", "2500.00"),
    invoice("F4", "C3", "2026-02-10", "2026-03-16", "99.90"),
    invoice("F5", "C4", "2026-02-10", "2026-03-16", "50.00"),
    invoice("F6", "C5", "2026-01-10", "2026-02-20", "640.00"),
    invoice("F7", "C6", "2025-01-10", "2025-02-10", "5000.00"),
]


def scenario(tmp_path, extra=(), **kw):
    acts = [
        action(
            "A1",
            "C1",
            "formal_notice",
            ["F1", "F2"],
            deliveries=[("D1-reg", "registered_letter", "pending_approval"), ("D1-mail", "email", "pending_approval")],
            charges={"per_invoice": {"F1": ("16.44", "40.00"), "F2": ("0.61", "40.00")}},
        ),
        action(
            "A2", "C2", "reminder_2", ["F3"], deliveries=[("D2-mail", "email"), ("D2-sms", "sms"), ("D2-let", "letter")]
        ),
        action("A3", "C3", "due", ["F4"], deliveries=[("D3-mail", "email")]),
        action("A4", "C4", "due", ["F5"], deliveries=[("D4-mail", "email")]),
        action("A5", "C5", "call_1", ["F6"], deliveries=[("D5-call", "phone")]),
        action("A6", "C6", "call_2", ["F7"], deliveries=[("D6-call", "phone")]),
        action("A7", "C2", "litigation", ["F3"], deliveries=[("D7-hand", "handoff")]),
        *extra,
    ]
    return build(
        tmp_path, customers=CUSTOMERS, invoices=INVOICES, as_of=AS_OF, actions=acts, with_charges_table=True, **kw
    )


@pytest.fixture
def db(tmp_path):
    return scenario(tmp_path)


def test_outbox_run_renders_every_channel_and_marks_sent(db, tmp_path):
    out = tmp_path / "outbox"
    summary = dispatch(str(db), AS_OF, str(out), now=NOW, auto_approve=True)
    rows = deliveries(db)
    day = out / "2026-03-16"
    assert summary["mode"] == "outbox" and summary["auto_approved"] == 1
    for d in ("D1-reg", "D1-mail", "D2-mail", "D2-sms", "D2-let", "D5-call", "D6-call", "D7-hand"):
        assert rows[d]["status"] == "sent" and rows[d]["provider"] == "outbox", (d, rows[d])
        assert rows[d]["attempts"] == 1 and rows[d]["sent_at"] is not None
    # .eml: text and HTML alternatives; the formal notice's copy carries the letter's PDF
    msg = email.message_from_bytes(
        (day / "email" / f"{file_stem('D1-mail')}.eml").read_bytes(), policy=email_policy.default
    )
    assert msg["To"].addresses[0].addr_spec == "c1@client.example"
    assert msg["Subject"].startswith("Mise en demeure de payer")
    assert msg["X-Relance-Delivery-Id"] == "D1-mail"
    assert msg.get_body(("plain",)).get_content().count("F1") == 2  # its table row and the reference to quote
    assert "F2" in msg.get_body(("html",)).get_content()
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["mise-en-demeure-de-payer-C1.pdf"]
    pdf = tmp_path / "att.pdf"
    pdf.write_bytes(attachments[0].get_content())
    assert "Mise en demeure de payer" in pdf_text(pdf)
    en = email.message_from_bytes(
        (day / "email" / f"{file_stem('D2-mail')}.eml").read_bytes(), policy=email_policy.default
    )
    assert "€2,500.00" in en.get_body(("plain",)).get_content() and not list(en.iter_attachments())
    # SMS as text, letters as PDF, worklists, dossier
    assert "€2,500.00" in (day / "sms" / f"{file_stem('D2-sms')}.txt").read_text(encoding="utf-8")
    assert (day / "letter" / f"{file_stem('D2-let')}.pdf").exists() and (
        day / "registered_letter" / f"{file_stem('D1-reg')}.pdf"
    ).exists()
    assert {p.name for p in (day / "phone").iterdir()} == {
        f"worklist-{file_stem('Julie')}.csv",
        f"worklist-{file_stem('Julie')}.html",
        f"worklist-{file_stem('unassigned')}.csv",
        f"worklist-{file_stem('unassigned')}.html",
    }
    assert (day / "handoff" / unit_stem("C2", "EUR") / "summary.pdf").exists()
    assert summary["by_channel"]["email"]["sent"] == 2
    assert summary["in_doubt"]["count"] == 0 and summary["pending_approval"] == 0


def test_a_second_run_sends_nothing_again(db, tmp_path):
    out = tmp_path / "outbox"
    dispatch(str(db), AS_OF, str(out), now=NOW, auto_approve=True)
    first = deliveries(db)
    again = dispatch(str(db), AS_OF, str(out), now=NOW, auto_approve=True)
    assert again["totals"] == {} and again["batches"] == 0
    assert deliveries(db) == first  # not a single row changed: attempts, sent_at, files


def test_invalid_or_missing_contacts_fall_back(db, tmp_path):
    summary = dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    # the address SendGrid would refuse (dropped at load by the same rule, relance.core.emails): a letter
    # instead, on the same delivery id
    assert rows["D3-mail"]["channel"] == "letter" and rows["D3-mail"]["status"] == "sent"
    assert rows["D3-mail"]["fallback_from"] == "email"
    assert "no email address: falls back to letter" in events(db, "D3-mail")[0]["detail"]
    assert rows["D3-mail"]["artifact_path"].endswith(f"/letter/{file_stem('D3-mail')}.pdf")
    # no email and no postal address
    assert rows["D4-mail"]["status"] == "undeliverable" and "no postal address" in rows["D4-mail"]["last_error"]
    assert summary["prepared"]["fell_back_to_letter"] == 1 and summary["prepared"]["undeliverable"] == 1
    assert [e["status"] for e in events(db, "D3-mail")] == ["planned", "sending", "sent"]


def test_fallback_is_skipped_when_the_action_already_sends_a_letter(tmp_path):
    db = scenario(
        tmp_path,
        extra=[action("A8", "C3", "reminder_2", ["F4"], deliveries=[("D8-mail", "email"), ("D8-let", "letter")])],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    assert rows["D8-mail"]["status"] == "skipped" and rows["D8-let"]["status"] == "sent"


def test_approval_pending_then_approved_then_sent(db, tmp_path):
    out = str(tmp_path / "outbox")
    first = dispatch(str(db), AS_OF, out, now=NOW)
    rows = deliveries(db)
    assert rows["D1-reg"]["status"] == rows["D1-mail"]["status"] == "pending_approval"
    assert first["pending_approval"] == 2
    with pytest.raises(UserError, match="A2: is planned, not waiting for approval"):
        approve(str(db), AS_OF, action_ids=["A1", "A2"], by="claire")
    result = approve(str(db), AS_OF, action_ids=["A1"], by="claire", reason="checked with sales")
    assert result["approved"] == ["A1"] and result["deliveries_planned"] == 2
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select status, decided_by, decision_reason from dunning_actions where action_id = 'A1'"
        ).fetchone() == ("approved", "claire", "checked with sales")
    nxt = dispatch(str(db), date(2026, 3, 17), out, now=NOW)
    rows = deliveries(db)
    assert rows["D1-reg"]["status"] == rows["D1-mail"]["status"] == "sent"
    assert nxt["by_channel"] == {"registered_letter": {"sent": 1}, "email": {"sent": 1}}
    assert (tmp_path / "outbox" / "2026-03-17" / "registered_letter" / f"{file_stem('D1-reg')}.pdf").exists()


def test_rejected_actions_are_skipped_with_who_and_why(db, tmp_path):
    with pytest.raises(UserError, match="--reason"):
        approve(str(db), AS_OF, reject_ids=["A1"], by="claire")
    result = approve(str(db), AS_OF, reject_ids=["A1"], by="claire", reason="customer disputes F1")
    assert result["rejected"] == ["A1"] and result["deliveries_skipped"] == 2
    rows = deliveries(db)
    assert (
        rows["D1-reg"]["status"] == "skipped"
        and rows["D1-reg"]["last_error"] == "rejected by claire: customer disputes F1"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select status, decided_by, decision_reason from dunning_actions where action_id = 'A1'"
        ).fetchone() == ("rejected", "claire", "customer disputes F1")
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW, auto_approve=True)
    assert deliveries(db)["D1-reg"]["status"] == "skipped"  # auto-approve does not resurrect it


def test_planned_delivery_of_an_approval_stage_waits(tmp_path):
    db = scenario(
        tmp_path, extra=[action("A9", "C6", "formal_notice", ["F7"], deliveries=[("D9", "registered_letter")])]
    )
    summary = dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    assert deliveries(db)["D9"]["status"] == "pending_approval" and summary["prepared"]["held_for_approval"] == 1


def test_settled_since_the_action_is_not_sent(tmp_path):
    # a reminder planned on the 16th, deferred; F6 is paid on the 17th, before the next run
    db = scenario(
        tmp_path,
        payments=[
            {"payment_id": "P1", "customer_id": "C5", "invoice_id": "F6", "paid_date": "2026-03-17", "amount": "640.00"}
        ],
        extra=[action("A10", "C5", "reminder_2", ["F6"], deliveries=[("D10-let", "letter")])],
    )
    from tests.fakes.scenario import ingest_and_age

    ingest_and_age(tmp_path / "r-src", db, date(2026, 3, 17))
    summary = dispatch(str(db), date(2026, 3, 17), str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    assert rows["D10-let"]["status"] == "skipped" and "settled or put on hold" in rows["D10-let"]["last_error"]
    assert summary["prepared"]["skipped_stale"] >= 1


def test_worklists_per_collector_by_priority(tmp_path):
    db = scenario(
        tmp_path,
        extra=[
            action("A11", "C2", "call_1", ["F3"], deliveries=[("D11-call", "phone")]),
        ],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    day = tmp_path / "outbox" / "2026-03-16" / "phone"
    rows = list(csv.DictReader(open(day / f"worklist-{file_stem('Julie')}.csv", encoding="utf-8")))
    # C2: 2 500 € at 40 days (≈ 95.6 %) comes before C6: 5 000 € at 399 days (10 %)
    assert [r["customer_id"] for r in rows] == ["C2", "C6"]
    by_customer = {r["customer_id"]: r for r in rows}
    assert by_customer["C6"]["priority"] == "500.00"
    assert "F3 due 2026-02-04" in by_customer["C2"]["invoices"]
    assert "reminder_2" in by_customer["C2"]["history"]  # the unit's other actions
    assert by_customer["C2"]["script"].startswith("1. Introduce yourself")  # English customer, English script
    html = (day / f"worklist-{file_stem('Julie')}.html").read_text(encoding="utf-8")
    assert html.index("Acme Ltd") < html.index("Vieille Dette SA")
    unassigned = list(csv.DictReader(open(day / f"worklist-{file_stem('unassigned')}.csv", encoding="utf-8")))
    assert [r["customer_id"] for r in unassigned] == ["C5"] and unassigned[0]["script"].startswith("1. Se présenter")


def test_worklists_show_the_debtors_payment_profile(tmp_path):
    """The latest profile measured before the run (03-15 here; 03-16 and 03-17 are ignored) gives each
    entry its class and score; a unit without a profile has empty cells. The order is unchanged."""
    from tasks import warehouse

    db = scenario(
        tmp_path,
        extra=[
            action("A11", "C2", "call_1", ["F3"], deliveries=[("D11-call", "phone")]),
        ],
    )
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        for as_of, cls, score in (("2026-03-15", "D", 21), ("2026-03-16", "B", 70), ("2026-03-17", "A", 95)):
            con.execute(
                "insert into debtor_profile (as_of, customer_id, currency, paid_invoices, paid_late, paid_late_30, "
                "paid_amount, open_amount, overdue_amount, overdue_share, score, risk_class) "
                "values (?, 'C2', 'EUR', 3, 3, 2, 5000, 2500, 2500, 100, ?, ?)",
                [as_of, score, cls],
            )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    day = tmp_path / "outbox" / "2026-03-16" / "phone"
    rows = list(csv.DictReader(open(day / f"worklist-{file_stem('Julie')}.csv", encoding="utf-8")))
    assert [(r["customer_id"], r["risk_class"], r["risk_score"]) for r in rows] == [("C2", "D", "21"), ("C6", "", "")]
    html = (day / f"worklist-{file_stem('Julie')}.html").read_text(encoding="utf-8")
    assert "Payment profile D (21/100)" in html or "Profil de paiement D (21/100)" in html


def test_worklist_order_weighs_the_debtors_risk_class(tmp_path):
    """priority = Σ open × chance(days past due) × weight(class) (worklists.risk_weights: A 0.8, B 1.0,
    C 1.25, D 1.5, new 1.0), profiles of 03-15. On 03-16, F1–F3 due 02-04 are 40 days late:
    chance 1 − 0.1 × 40/90 = 0.955556; F4 due 2025-12-16 is 90 days late: 0.9.
      C1 A  1000.00 × 0.955556 = 955.56 × 0.8  = 764.448 → 764.45
      C2 D   800.00 × 0.955556 = 764.44 × 1.5  = 1146.66
      C3 C   900.00 × 0.955556 = 860.00 × 1.25 = 1075.00
      C4 new 1100.00 × 0.9     = 990.00 × 1.0  = 990.00
    By amount and age alone the order would be C4, C1, C3, C2; with the class: C2, C3, C4, C1."""
    from tasks import warehouse

    db = build(
        tmp_path,
        customers=[customer(c, collector="Julie") for c in ("C1", "C2", "C3", "C4")],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "1000.00"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "800.00"),
            invoice("F3", "C3", "2026-01-05", "2026-02-04", "900.00"),
            invoice("F4", "C4", "2025-11-16", "2025-12-16", "1100.00"),
        ],
        as_of=AS_OF,
        actions=[action(f"A{i}", f"C{i}", "call_1", [f"F{i}"], deliveries=[(f"D{i}", "phone")]) for i in range(1, 5)],
    )
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        for cust, score, cls in (("C1", 90, "A"), ("C2", 21, "D"), ("C3", 50, "C"), ("C4", None, "new")):
            con.execute(
                "insert into debtor_profile (as_of, customer_id, currency, paid_invoices, paid_late, paid_late_30, "
                "paid_amount, open_amount, overdue_amount, overdue_share, score, risk_class) "
                "values ('2026-03-15', ?, 'EUR', 3, 0, 0, 1000, 1000, 1000, 100, ?, ?)",
                [cust, score, cls],
            )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    day = tmp_path / "outbox" / "2026-03-16" / "phone"
    rows = list(csv.DictReader(open(day / f"worklist-{file_stem('Julie')}.csv", encoding="utf-8")))
    assert [(r["rank"], r["customer_id"], r["risk_class"], r["risk_score"], r["priority"]) for r in rows] == [
        ("1", "C2", "D", "21", "1146.66"),
        ("2", "C3", "C", "50", "1075.00"),
        ("3", "C4", "new", "", "990.00"),
        ("4", "C1", "A", "90", "764.45"),
    ]
    html = (day / f"worklist-{file_stem('Julie')}.html").read_text(encoding="utf-8")
    assert html.index("Client C2") < html.index("Client C3") < html.index("Client C4") < html.index("Client C1")
    assert "A 0.8, B 1, C 1.25, D 1.5, new 1" in html


def test_worklist_cells_cannot_become_formulas(tmp_path):
    customers = [customer("C1", '=HYPERLINK("http://evil.example","clic")', collector="@Julie")]
    db = build(
        tmp_path,
        customers=customers,
        invoices=[invoice("F1", "C1", "2026-01-05", "2026-02-04", "10.00")],
        as_of=AS_OF,
        actions=[action("A1", "C1", "call_1", ["F1"], deliveries=[("D1", "phone")])],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    files = list((tmp_path / "outbox" / "2026-03-16" / "phone").glob("*.csv"))
    rows = list(csv.reader(open(files[0], encoding="utf-8")))
    assert rows[1][4].startswith("'=HYPERLINK") and rows[1][2] == "'@Julie"
    html = files[0].with_suffix(".html").read_text(encoding="utf-8")
    assert "&#34;http://evil.example&#34;" in html or "&quot;http://evil.example&quot;" in html


def test_handoff_dossier_holds_letters_invoices_history_and_sums(tmp_path):
    db = scenario(
        tmp_path,
        extra=[
            action(
                "A12",
                "C1",
                "litigation",
                ["F1", "F2"],
                deliveries=[("D12-hand", "handoff")],
                charges={"per_invoice": {"F1": ("20.00", "40.00"), "F2": ("1.00", "40.00")}},
            ),
        ],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW, auto_approve=True)
    folder = tmp_path / "outbox" / "2026-03-16" / "handoff" / unit_stem("C1", "EUR")
    assert deliveries(db)["D12-hand"]["artifact_path"] == str(folder)
    assert sorted(p.name for p in (folder / "letters").iterdir()) == ["2026-03-16-formal_notice-registered_letter.pdf"]
    assert sorted(p.name for p in (folder / "emails").iterdir()) == ["2026-03-16-formal_notice-email.eml"]
    invoices = list(csv.DictReader(open(folder / "invoices.csv", encoding="utf-8")))
    assert [(r["invoice_id"], r["open_amount"], r["interest"], r["indemnity"]) for r in invoices] == [
        ("F1", "1234.56", "20.00", "40.00"),
        ("F2", "80.00", "1.00", "40.00"),
    ]
    actions = list(csv.DictReader(open(folder / "actions.csv", encoding="utf-8")))
    assert {(r["stage"], r["channel"], r["delivery_status"]) for r in actions} >= {
        ("formal_notice", "registered_letter", "sent"),
        ("formal_notice", "email", "sent"),
    }
    summary = " ".join(pdf_text(folder / "summary.pdf").replace("\u202f", " ").replace("\xa0", " ").split())
    # principal 1 314,56 + interest 21,00 + indemnities 80,00 = 1 415,56
    assert "1 314,56 €" in summary and "21,00 €" in summary and "80,00 €" in summary and "1 415,56 €" in summary


def _manifest_ids(folder) -> list[str]:
    return [
        r["delivery_id"]
        for m in sorted(folder.glob("manifest-*.csv"))
        for r in csv.DictReader(open(m, encoding="utf-8"))
    ]


def test_a_stop_while_writing_letters_rewrites_them_and_prints_them_once(db, tmp_path):
    def crash(channel, results):
        if channel == "letter":
            raise RuntimeError("power cut")

    ledger.AFTER_PROVIDER_HOOKS.append(crash)
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    finally:
        ledger.AFTER_PROVIDER_HOOKS.remove(crash)
    letters = tmp_path / "outbox" / "2026-03-16" / "letter"
    assert deliveries(db)["D2-let"]["status"] == "sending"
    assert _manifest_ids(letters) == []  # never recorded, so never in a print batch
    summary = dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    assert rows["D2-let"]["status"] == "sent" and rows["D2-let"]["attempts"] == 2
    assert summary["prepared"]["rewritten_after_stop"] >= 1 and summary["in_doubt"]["count"] == 0
    assert sorted(_manifest_ids(letters)) == ["D2-let", "D3-mail"]  # the fallback letter too, each once


def test_letters_recorded_before_a_failure_still_reach_the_print_batch(db, tmp_path):
    def crash(channel, results):
        if channel == "email":
            raise RuntimeError("SendGrid client bug")

    ledger.AFTER_PROVIDER_HOOKS.append(crash)
    try:
        with pytest.raises(RuntimeError):
            dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    finally:
        ledger.AFTER_PROVIDER_HOOKS.remove(crash)
    letters = tmp_path / "outbox" / "2026-03-16" / "letter"
    assert deliveries(db)["D2-let"]["status"] == "sent"
    assert sorted(_manifest_ids(letters)) == ["D2-let", "D3-mail"] and (letters / "print-batch-letter.pdf").exists()
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)  # the emails go; no letter printed twice
    assert sorted(_manifest_ids(letters)) == ["D2-let", "D3-mail"]


def test_resolve_in_doubt(db, tmp_path):
    with duckdb.connect(str(db)) as con:
        con.execute(
            "update deliveries set status = 'sending', provider = 'sendgrid', attempts = 1 where delivery_id in ('D2-mail', 'D3-mail')"
        )
    summary = dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    assert summary["in_doubt"] == {"count": 2, "new": ["D2-mail", "D3-mail"], "ids": ["D2-mail", "D3-mail"]}
    again = dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    assert again["in_doubt"]["count"] == 2 and again["in_doubt"]["new"] == []
    assert deliveries(db)["D2-mail"]["status"] == "in_doubt"
    with pytest.raises(UserError, match="D2-sms: is sent"):
        resolve(str(db), ["D2-sms"], sent=True, by="ops")
    resolve(str(db), ["D2-mail"], sent=True, by="ops", reason="seen in SendGrid activity", provider_message_id="abc")
    resolve(str(db), ["D3-mail"], sent=False, by="ops", reason="not in SendGrid activity")
    rows = deliveries(db)
    assert rows["D2-mail"]["status"] == "sent" and rows["D2-mail"]["provider_message_id"] == "abc"
    assert rows["D3-mail"]["status"] == "planned"
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    assert rows["D3-mail"]["status"] == "sent" and rows["D2-mail"]["attempts"] == 1
    assert [e["actor"] for e in events(db, "D2-mail")][-1] == "resolve:ops"


def test_replay_and_future_actions_are_never_sent(tmp_path):
    db = scenario(tmp_path)
    with duckdb.connect(str(db)) as con:
        con.execute("update dunning_actions set mode = 'replay' where action_id = 'A2'")
    add_actions(db, [action("A20", "C5", "due", ["F6"], deliveries=[("D20", "email")], as_of=date(2026, 3, 20))], AS_OF)
    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    rows = deliveries(db)
    assert rows["D2-mail"]["status"] == "planned" and rows["D20"]["status"] == "planned"


def test_drafts_of_letters_waiting_for_approval_are_rendered_and_nothing_is_recorded(db, tmp_path):
    """Whoever approves a formal notice can read it first: its registered letter as it will be sent,
    marked as a draft, while the ledger stays as it was (nothing claimed, nothing sent)."""
    from tasks.approve import approval_markdown, pending_notices
    from tasks.dispatch.drafts import render_drafts

    out = str(tmp_path / "outbox")
    dispatch(str(db), AS_OF, out, now=NOW)  # A1's deliveries wait for approval
    before = deliveries(db)
    events_before = events(db, "D1-reg")
    drafts = render_drafts(str(db), AS_OF, out)
    assert [(d["action_id"], d["delivery_id"], d["channel"]) for d in drafts] == [("A1", "D1-reg", "registered_letter")]
    path = tmp_path / "outbox" / "2026-03-16" / "drafts" / f"{file_stem('D1-reg')}.pdf"
    assert drafts[0]["path"] == str(path) and path.read_bytes().startswith(b"%PDF")
    text = pdf_text(path)
    assert "PROJET — en attente" in text and "Boulangerie Martin SARL" in text and "LETTRE RECOMMANDÉE" in text
    assert "1 234,56" in text.replace("\u202f", " ").replace("\u00a0", " ")  # F1's open amount, as sent
    assert deliveries(db) == before and events(db, "D1-reg") == events_before
    assert not (tmp_path / "outbox" / "2026-03-16" / "registered_letter" / f"{file_stem('D1-reg')}.pdf").exists()
    md = approval_markdown(pending_notices(str(db), AS_OF), AS_OF, out, 6.0, drafts)
    assert f"`A1` registered_letter: `{path}`" in md and "Boulangerie" not in md  # ids only in the artifact
    # once approved, the letter sent is rendered then, without the mark
    approve(str(db), AS_OF, action_ids=["A1"], by="claire")
    dispatch(str(db), AS_OF, out, now=NOW)
    sent = tmp_path / "outbox" / "2026-03-16" / "registered_letter" / f"{file_stem('D1-reg')}.pdf"
    assert "PROJET" not in pdf_text(sent) and "Boulangerie Martin SARL" in pdf_text(sent)
    assert render_drafts(str(db), AS_OF, out) == []  # nothing waits any more


def test_cli_drafts_lists_the_drafts_it_wrote(db, tmp_path):
    from typer.testing import CliRunner

    from relance.cli import app

    dispatch(str(db), AS_OF, str(tmp_path / "outbox"), now=NOW)
    res = CliRunner().invoke(
        app, ["drafts", "--db", str(db), "--as-of", "2026-03-16", "--outbox", str(tmp_path / "box")]
    )
    assert res.exit_code == 0, res.output
    path = tmp_path / "box" / "2026-03-16" / "drafts" / f"{file_stem('D1-reg')}.pdf"
    assert res.output.splitlines() == [
        "1 draft(s) of letters waiting for approval:",
        f"  A1  registered_letter  {path}",
    ]
    assert path.read_bytes().startswith(b"%PDF")


def test_litigation_dossier_lists_real_steps_in_the_readers_words(tmp_path):
    """C1: a registered formal notice really sent on 03-16 (the mail room then wrote its tracking
    number in the manifest), litigation handed over on 03-17. C2: earlier steps only simulated.
    The French dossier names stages, channels and statuses in French (no raw code), lists each real
    step with its print batch and tracking number, counts its own handoff as sent (summary and
    actions.csv agree) and says "Courriers envoyés : aucun" when no letter was really sent."""
    day2 = date(2026, 3, 17)
    db = build(
        tmp_path,
        customers=CUSTOMERS,
        invoices=INVOICES,
        as_of=AS_OF,
        with_charges_table=True,
        actions=[
            action(
                "A1",
                "C1",
                "formal_notice",
                ["F1", "F2"],
                deliveries=[("D1-reg", "registered_letter")],
                charges={"per_invoice": {"F1": ("16.44", "40.00"), "F2": ("0.61", "40.00")}},
            ),
            action(
                "A0", "C2", "reminder_2", ["F3"], deliveries=[("D0-sim", "letter", "simulated")], status="simulated"
            ),
            action(
                "A9",
                "C1",
                "litigation",
                ["F1", "F2"],
                as_of=day2,
                deliveries=[("D9-hand", "handoff")],
                charges={"per_invoice": {"F1": ("16.85", "40.00"), "F2": ("0.64", "40.00")}},
            ),
            action("A8", "C2", "litigation", ["F3"], as_of=day2, deliveries=[("D8-hand", "handoff")]),
        ],
    )
    out = tmp_path / "outbox"
    dispatch(str(db), AS_OF, str(out), now=NOW, auto_approve=True)
    manifest = out / "2026-03-16" / "registered_letter" / "manifest-registered_letter.csv"
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    rows[0]["tracking_number"] = "1A02345678901"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    dispatch(str(db), day2, str(out), now=datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    assert deliveries(db)["D9-hand"]["status"] == "sent" and deliveries(db)["D8-hand"]["status"] == "sent"
    c1 = out / "2026-03-17" / "handoff" / unit_stem("C1", "EUR")
    text = " ".join(pdf_text(c1 / "summary.pdf").replace("\u202f", " ").replace("\xa0", " ").split())
    import html as html_lib
    import re

    shown = html_lib.unescape(
        re.sub(r"<style>.*?</style>|<[^>]+>", " ", (c1 / "summary.html").read_text(encoding="utf-8"), flags=re.S)
    )
    words = re.sub(r"\S+\.(pdf|eml)\b", " ", shown)  # file names are names, not words
    for code in ("litigation", "formal_notice", "registered_letter", "handoff", "planned", "sent", "b2b", "C1|EUR"):
        assert code not in words, code
    assert "Mise en demeure" in text and "Lettre recommandée AR" in text and "envoyé" in text
    assert "Transmission contentieuse" in text and "Dossier transmis" in text and "professionnel" in text
    assert "2026-03-16/registered_letter/print-batch-registered_letter.pdf" in shown and "1A02345678901" in text
    assert "Courriers envoyés 16/03/2026 — Mise en demeure (Lettre recommandée AR)" in " ".join(shown.split())
    assert "Notre référence : CT-" in text
    actions = list(csv.DictReader(open(c1 / "actions.csv", encoding="utf-8")))
    assert [(r["stage"], r["channel"], r["delivery_status"], r["tracking_number"]) for r in actions] == [
        ("formal_notice", "registered_letter", "sent", "1A02345678901"),
        ("litigation", "handoff", "sent", ""),
    ]
    c2 = out / "2026-03-17" / "handoff" / unit_stem("C2", "EUR")
    text2 = " ".join(pdf_text(c2 / "summary.pdf").replace("\u202f", " ").replace("\xa0", " ").split())
    assert text2.endswith("Courriers envoyés aucun•")  # the heading, then its one item: « aucun » (courriers)
    assert "Deuxième relance" not in text2 and "simul" not in text2  # the replayed step is not a real one
    assert [(r["stage"], r["delivery_status"]) for r in csv.DictReader(open(c2 / "actions.csv", encoding="utf-8"))] == [
        ("litigation", "sent")
    ]
    # laid out as printed: the long print-batch path wraps inside its column, and every table and
    # word of C1's summary stays within the page's content box (no column pushed past the margin)
    from weasyprint import HTML
    from weasyprint.formatting_structure import boxes

    page_html = (c1 / "summary.html").read_text(encoding="utf-8")
    batch = "2026-03-16/registered_letter/print-batch-registered_letter.pdf"
    longer = "2026-03-16/registered_letter/print-batch-registered_letter-12.pdf"  # a 12th batch that night
    assert batch in page_html
    # and invoice numbers of an ERP's length (INV-2025-408623)
    assert "<td>F1</td>" in page_html and "<td>F2</td>" in page_html
    page_html = page_html.replace("<td>F1</td>", "<td>INV-2025-408623</td>").replace(
        "<td>F2</td>", "<td>INV-2025-408624</td>"
    )
    doc = HTML(string=page_html.replace(batch, longer)).render()
    for laid in doc.pages:
        page = laid._page_box
        left, right = page.content_box_x(), page.content_box_x() + page.width
        for b in page.descendants():
            if isinstance(b, boxes.TableBox):
                assert left - 0.5 <= b.border_box_x() and b.border_box_x() + b.border_width() <= right + 0.5
            if isinstance(b, boxes.TextBox):
                assert left - 0.5 <= b.position_x and b.position_x + b.width <= right + 0.5, b.text


def test_approval_artifact_shows_each_amount_in_its_currency(tmp_path):
    """A GBP unit's formal notice: its invoices and interest in pounds, the fixed indemnity in euros
    (policy indemnity_currency = EUR), written as finance reads it ("40,00 €", never "40.00 GBP"),
    and totals per currency: GBP 2 500,00 + 33,29 = 2 533,29; EUR 1 314,56 + 17,05 + 80,00 + 40,00
    (the GBP unit's indemnity) = 1 451,61 €."""
    from tasks.approve import approval_markdown, pending_notices

    db = build(
        tmp_path,
        customers=CUSTOMERS,
        as_of=AS_OF,
        with_charges_table=True,
        invoices=[*INVOICES[:2], invoice("G1", "C2", "2026-01-05", "2026-02-04", "2500.00", currency="GBP")],
        actions=[
            action(
                "A1",
                "C1",
                "formal_notice",
                ["F1", "F2"],
                deliveries=[("D1", "registered_letter", "pending_approval")],
                charges={"per_invoice": {"F1": ("16.44", "40.00"), "F2": ("0.61", "40.00")}},
            ),
            action(
                "AG",
                "C2",
                "formal_notice",
                ["G1"],
                currency="GBP",
                deliveries=[("DG", "registered_letter", "pending_approval")],
                charges={"per_invoice": {"G1": ("33.29", "40.00")}},
            ),
        ],
    )
    md = approval_markdown(pending_notices(str(db), AS_OF), AS_OF, str(tmp_path / "outbox"), 6.0, [], locale="fr_FR")
    md = md.replace("\u202f", " ").replace("\xa0", " ")
    row = next(line for line in md.splitlines() if line.startswith("| `AG`"))
    # (French CLDR writes the pound "£GB")
    assert "| 2 500,00 £GB | 33,29 £GB | 40,00 € | 33,29 £GB + 40,00 € |" in row
    assert "GBP |" not in row and "40.00" not in md
    a1 = next(line for line in md.splitlines() if line.startswith("| `A1`"))
    assert "| 1 314,56 € | 17,05 € | 80,00 € | 97,05 € |" in a1
    assert "| EUR | 1 314,56 € | 17,05 € | 120,00 € | 1 451,61 € |" in md
    assert "| GBP | 2 500,00 £GB | 33,29 £GB | 0,00 £GB | 2 533,29 £GB |" in md
