"""What a stage does comes from its keys in the policy, never from its code (issue 13 §3).

The policy of these tests is the default one with `formal_notice` renamed `demeure` and an extra
stage, `reminder_1` (+3 days, email), between `due` and `call_1`:

    preventive −5, due 0, reminder_1 +3, call_1 +8, reminder_2 +20, call_2 +25,
    demeure +30 (registered letter + email, approval, min 100.00, charged, formal, attached letter,
    legal notice, reference MD, wording formal_notice), amicable +45 (min 250.00),
    litigation +60 (handoff, min 500.00, charged, reference CT).

Late start, worked by hand (2026-03-02 is a Monday; 03-22 and 03-29 are Sundays): I1 800.00 due
Fri 2026-01-30, first seen on Tue 03-10 (+39): `due` (preventive passed over), then one step
every three days at least, on business days — reminder_1 Fri 03-13, call_1 Mon 03-16, reminder_2
Thu 03-19, call_2 Mon 03-23 (03-22 is a Sunday), demeure Thu 03-26 (+55), amicable Mon 03-30,
litigation Thu 04-02 (+62 ≥ 60, 800.00 ≥ 500.00).

Charges (2026-H1 reference rate 2.15 % + 10 points = 12.15 %, 365-day year):
demeure on 03-26: 800.00 × 55 days (01-31..03-26) × 12.15 % / 365 = 14.646… → 14.65, + 40.00;
litigation on 04-02: 800.00 × 62 days × 12.15 % / 365 = 16.510… → 16.51, + 40.00.
"""

from __future__ import annotations

import email
from datetime import UTC, date, datetime
from decimal import Decimal as D
from email import policy as email_policy
from pathlib import Path

import pytest

from relance.core.errors import PolicyError
from relance.core.policy import load_policy
from tasks.dispatch import dispatch
from tasks.dispatch.ledger import file_stem
from tests.fakes.scenario import pdf_text
from tests.ladder_helpers import actions, customer, days, deliveries, invoice, query, run_days, unit, write_source

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOTICE = "C1|EUR|1|demeure"


def renamed_policy(tmp_path: Path) -> str:
    """The default policy, `formal_notice` renamed `demeure` (its wording kept), plus `reminder_1`."""
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    for old, new in (
        ("  - code: formal_notice\n", "  - code: demeure\n    template: formal_notice\n"),
        (
            "  - code: call_1\n",
            "  - code: reminder_1\n    offset_days: 3\n    channels: [email]\n"
            "    description: A second courteous email.\n  - code: call_1\n",
        ),
    ):
        assert text.count(old) == 1
        text = text.replace(old, new)
    # the ladders (issue 16) name the catalogue's codes: renamed there too
    text = text.replace("{code: formal_notice,", "{code: demeure,").replace(
        "      - formal_notice\n", "      - demeure\n"
    )
    assert "formal_notice" not in text.replace("template: formal_notice", "")  # the code is gone
    path = tmp_path / "renamed.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def source(tmp_path: Path) -> str:
    """C1 reachable on every channel; C2 has no email and no postal address: its notice cannot go out."""
    return write_source(
        tmp_path / "src",
        customers=[customer("C1"), customer("C2", email="", street="", postal_code="", city="")],
        invoices=[invoice("I1", "C1", "2026-01-30", "800.00"), invoice("I2", "C2", "2026-01-30", "800.00")],
    )


def charges(db: str, action_id: str) -> tuple:
    return query(
        db,
        "select interest_amount, indemnity_amount, charges_total, requires_approval from dunning_actions "
        "where action_id = $a",
        {"a": action_id},
    )[0]


def test_the_renamed_policy_validates_and_keeps_the_stage_keys(tmp_path):
    pol = load_policy(renamed_policy(tmp_path))
    assert [s.code for s in pol.stages] == [
        "preventive",
        "due",
        "reminder_1",
        "call_1",
        "reminder_2",
        "call_2",
        "demeure",
        "amicable",
        "litigation",
    ]
    notice = pol.stage("demeure")
    assert pol.notice_stage is notice
    assert (
        notice.charged,
        notice.formal,
        notice.attach_letter,
        notice.legal_notice,
        notice.requires_approval,
        notice.reference_prefix,
        notice.wording,
        notice.channels,
    ) == (True, True, True, True, True, "MD", "formal_notice", ("registered_letter", "email"))
    extra = pol.stage("reminder_1")
    assert (
        extra.charged,
        extra.formal,
        extra.legal_notice,
        extra.stopped_by_opt_out,
        extra.reference_prefix,
        extra.wording,
    ) == (False, False, False, False, "RL", "reminder_1")
    assert [s.code for s in pol.stages if s.charged] == ["demeure", "litigation"]
    assert [s.code for s in pol.stages if s.stopped_by_opt_out] == ["preventive"]


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "    reference_prefix: CT\n",
            "    reference_prefix: CT\n    legal_notice: true\n",
            "stages[7].legal_notice: only one stage can be the legal notice (stages[5] is)",
        ),
        (
            "    stopped_by_opt_out: true\n",
            "    stopped_by_opt_out: true\n    charged: true\n",
            "an opt-out never stops a charged, formal or legal-notice stage",
        ),
        ("    reference_prefix: MD\n", "    reference_prefix: mise\n", "stages[5].reference_prefix"),
        (
            "    reference_prefix: MD\n",
            "    reference_prefix: MD\n    registered: true\n",
            "stages[5].registered: Extra inputs",
        ),
    ],
)
def test_stage_keys_are_validated(tmp_path, old, new, message):
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert message in str(e.value)


def test_a_replay_with_a_renamed_and_an_extra_stage(tmp_path):
    pol = renamed_policy(tmp_path)
    db = str(tmp_path / "r.duckdb")
    run_days(source(tmp_path), db, days("2026-03-10", "2026-04-02"), policy=pol, mode="replay")
    assert [(a[0], a[4], a[7]) for a in actions(db, "C1")] == [
        ("2026-03-10", "due", "simulated"),
        ("2026-03-13", "reminder_1", "simulated"),
        ("2026-03-16", "call_1", "simulated"),
        ("2026-03-19", "reminder_2", "simulated"),
        ("2026-03-23", "call_2", "simulated"),
        ("2026-03-26", "demeure", "simulated"),
        ("2026-03-30", "amicable", "simulated"),
        ("2026-04-02", "litigation", "simulated"),
    ]
    assert deliveries(db, "C1|EUR|1|reminder_1") == [("C1|EUR|1|reminder_1|email", "email", "simulated", None, None)]
    # the renamed stage states the charges, needs approval, goes by registered letter and email
    assert charges(db, NOTICE) == (D("14.65"), D("40.00"), D("54.65"), True)
    assert charges(db, "C1|EUR|1|litigation") == (D("16.51"), D("40.00"), D("56.51"), False)
    assert charges(db, "C1|EUR|1|reminder_2") == (None, None, None, False)
    assert [d[1:3] for d in deliveries(db, NOTICE)] == [("email", "simulated"), ("registered_letter", "simulated")]
    # the legal gate: C2's notice had no message to send, so nothing above it (even in a replay)
    assert [a[4] for a in actions(db, "C2")][-1] == "demeure"
    u = unit(db, "2026-04-02", "C2")
    assert (u["current_stage"], u["no_action_reason"], u["wait_reason"], u["wait_detail"]) == (
        "demeure",
        "formal_notice_not_sent",
        "formal_notice_not_sent",
        "no formal notice was sent in episode C2|EUR|1: amicable waits for one",
    )


def _dispatch(db: str, day: str, out: Path, pol: str, **kw) -> dict:
    d = date.fromisoformat(day)
    return dispatch(db, d, str(out), policy=pol, now=datetime(d.year, d.month, d.day, 9, 0, tzinfo=UTC), **kw)


def test_a_live_run_with_a_renamed_and_an_extra_stage_renders_and_sends(tmp_path):
    pol = renamed_policy(tmp_path)
    db, out = str(tmp_path / "r.duckdb"), tmp_path / "outbox"
    run_days(source(tmp_path), db, ["2026-03-10", "2026-03-13"], policy=pol)

    # the extra stage is taken and its email sent (the generic wording: email/<lang>/default.j2)
    _dispatch(db, "2026-03-13", out, pol)
    assert deliveries(db, "C1|EUR|1|reminder_1") == [("C1|EUR|1|reminder_1|email", "email", "sent", None, None)]
    extra = email.message_from_bytes(
        (out / "2026-03-13" / "email" / f"{file_stem('C1|EUR|1|reminder_1|email')}.eml").read_bytes(),
        policy=email_policy.default,
    )
    assert "I1" in extra.get_body(("plain",)).get_content() and not list(extra.iter_attachments())
    assert "mise en demeure" not in extra.get_body(("plain",)).get_content().lower()

    run_days(None, db, ["2026-03-16", "2026-03-19", "2026-03-23", "2026-03-26"], policy=pol)
    assert [(a[0], a[4], a[7]) for a in actions(db, "C1")][-1] == ("2026-03-26", "demeure", "pending_approval")
    assert charges(db, NOTICE) == (D("14.65"), D("40.00"), D("54.65"), True)
    assert [d[1:3] for d in deliveries(db, NOTICE)] == [
        ("email", "pending_approval"),
        ("registered_letter", "pending_approval"),
    ]
    # waiting for approval: no visit
    run_days(None, db, ["2026-03-30"], policy=pol)
    assert unit(db, "2026-03-30", "C1")["no_action_reason"] == "pending_approval"

    # approved and sent: the formal letter's wording and the "MD" reference, the email with the letter
    summary = _dispatch(db, "2026-03-30", out, pol, auto_approve=True)
    assert summary["auto_approved"] == 1  # C2's notice has no message to approve
    sent = {d[1]: d[2] for d in deliveries(db, NOTICE)}
    assert sent == {"email": "sent", "registered_letter": "sent"}
    day = out / "2026-03-30"
    letter = " ".join(pdf_text(day / "registered_letter" / f"{file_stem(NOTICE + '|registered_letter')}.pdf").split())
    assert "Mise en demeure de payer" in letter and "L441-10" in letter and "MD-" in letter
    # the figures of the send date: 800.00 × 59 days (01-31..03-30) × 12.15 % / 365 = 15.711… → 15.71
    assert "15,71" in letter and "40,00" in letter
    msg = email.message_from_bytes(
        (day / "email" / f"{file_stem(NOTICE + '|email')}.eml").read_bytes(), policy=email_policy.default
    )
    assert msg["Subject"].startswith("Mise en demeure de payer")
    assert [a.get_filename() for a in msg.iter_attachments()] == ["mise-en-demeure-de-payer-C1.pdf"]

    # the legal gate: C1's notice went out, so the visit; C2's could not (no address, no email)
    run_days(None, db, ["2026-04-02"], policy=pol)
    assert [(a[0], a[4]) for a in actions(db, "C1")][-1] == ("2026-04-02", "amicable")
    u = unit(db, "2026-04-02", "C2")
    assert (u["current_stage"], u["no_action_reason"], u["wait_detail"]) == (
        "demeure",
        "formal_notice_not_sent",
        "no formal notice was sent in episode C2|EUR|1: amicable waits for one",
    )


def test_the_message_context_reads_the_stage_keys(tmp_path):
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import Renderer, message_context, sample_row

    pol = load_policy(renamed_policy(tmp_path))
    cfg = load_channels_config()
    r = Renderer(cfg)
    ctx = message_context(sample_row("demeure", "letter", "fr", policy=pol), cfg, date(2026, 3, 16), r.i18n)
    assert ctx["formal"] and ctx["wording"] == "formal_notice" and ctx["reference"].startswith("MD-")
    assert ctx["charges"]["indemnity"] == D("120.00")  # three overdue invoices × 40.00
    assert "mise en demeure" in r.letter(dict(ctx, anchor="L0")).lower()
    plain = message_context(sample_row("reminder_1", "letter", "fr", policy=pol), cfg, date(2026, 3, 16), r.i18n)
    assert not plain["formal"] and plain["charges"] is None and plain["reference"].startswith("RL-")
    assert r.stage_template("letter", "fr", plain["wording"]) == "letters/fr/default.j2"
    lit = message_context(sample_row("litigation", "handoff", "fr", policy=pol), cfg, date(2026, 3, 16), r.i18n)
    assert lit["reference"].startswith("CT-") and lit["charges"] is not None
