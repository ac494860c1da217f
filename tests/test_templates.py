"""Templates: wording per stage, channel and language; amounts and dates per language; tone;
values printed harmlessly; the SMS, quiet-hours, priority and address rules they rely on."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from relance.core.errors import UserError
from relance.preview import preview
from tasks.dispatch import check_templates
from tasks.dispatch.config import SmsCfg, load_channels_config
from tasks.dispatch.email import valid_email
from tasks.dispatch.render import Renderer, message_context, sample_row
from tasks.dispatch.sms import normalise, quiet_reason, segment
from tasks.dispatch.worklists import csv_safe, priority, recovery_chance

NNBSP, NBSP = "\u202f", "\u00a0"
CFG = load_channels_config()
R = Renderer(CFG)


def ctx_for(stage: str, channel: str, lang: str, **row) -> dict:
    base = sample_row(stage, channel, lang)
    base.update(row)
    ctx = message_context(base, CFG, date(2026, 3, 16), R.i18n)
    ctx.update(anchor="L0", formal=channel == "registered_letter")
    return ctx


# -- amounts and dates ------------------------------------------------------------------------------


def test_french_amounts_and_dates_follow_babel():
    mail = R.email(ctx_for("reminder_2", "email", "fr"))
    assert f"1{NNBSP}234,56{NBSP}€" in mail.text and f"1{NNBSP}234,56{NBSP}€" in mail.html
    assert "05/01/2026" in mail.text and "04/02/2026" in mail.text  # issue and due dates
    assert f"1{NNBSP}789,66{NBSP}€" in mail.text  # the total
    assert "INV-2026-000123" in mail.html and "INV-2026-000187" in mail.html
    assert "FR76 3000 6000 0112 3456 7890 189" in mail.text  # how to pay


def test_english_amounts_and_dates():
    mail = R.email(ctx_for("reminder_2", "email", "en"))
    assert "€1,234.56" in mail.text and "€1,789.66" in mail.html
    assert "5 January 2026" in mail.text and "4 February 2026" in mail.text
    assert "Second reminder" in mail.subject


def test_other_currency_and_foreign_indemnity():
    ctx = ctx_for(
        "formal_notice", "email", "en", currency="GBP", charges_total=Decimal("20.73"), indemnity_currency="EUR"
    )
    mail = R.email(ctx)
    # the invoices in pounds, the fixed indemnity stays in euros and is added beside the total
    assert "£1,789.66" in mail.text
    assert "£1,810.39 + €120.00" in mail.text


# -- tone ------------------------------------------------------------------------------------------

THREATS = re.compile(
    r"huissier|poursuite|judiciaire|tribunal|injonction|mise en demeure|contentieu|"
    r"bailiff|court|legal action|proceedings|formal notice|lawyer|avocat",
    re.I,
)


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("stage", ["preventive", "due", "call_1", "reminder_2", "call_2"])
def test_no_threat_before_the_formal_notice(stage, lang):
    ctx = ctx_for(stage, "email", lang)
    texts = [R.email(ctx).text, R.sms(ctx_for(stage, "sms", lang)), R.letter(ctx_for(stage, "letter", lang))]
    if stage.startswith("call"):
        texts.append(R.script(ctx_for(stage, "phone", lang)))
    for text in texts:
        assert not THREATS.search(text), (stage, lang, THREATS.search(text).group(0))


def test_courteous_then_firmer():
    pre = R.email(ctx_for("preventive", "email", "fr")).text
    due = R.email(ctx_for("due", "email", "fr")).text
    second = R.email(ctx_for("reminder_2", "email", "fr")).text
    assert "arrive prochainement à échéance" in pre and "ne pas tenir compte" in pre
    assert "à échéance ce jour" in due
    assert "sans délai" in second and "Malgré notre précédent rappel" in second
    assert "sans délai" not in pre + due


@pytest.mark.parametrize("lang,title", [("fr", "Mise en demeure de payer"), ("en", "Formal notice")])
def test_formal_notice_states_sums_basis_and_deadline(lang, title):
    mail = R.email(ctx_for("formal_notice", "email", lang)).text
    letter = R.letter(ctx_for("formal_notice", "registered_letter", lang))
    assert title in letter
    for text in (mail, letter):
        assert "L441-10" in text and "D441-5" in text and "1344" in text
        assert ("8 jours" if lang == "fr" else "8 days") in text
    money = {
        "fr": (f"1{NNBSP}930,39{NBSP}€", f"20,73{NBSP}€", f"120,00{NBSP}€"),
        "en": ("€1,930.39", "€20.73", "€120.00"),
    }[lang]
    for amount in money:  # total claimed, interest, indemnities — as the tables say
        assert amount in letter


def test_formal_notice_to_a_consumer_has_no_indemnity():
    ctx = ctx_for(
        "formal_notice", "registered_letter", "fr", segment="b2c", indemnity_amount=None, charges_total=Decimal("20.73")
    )
    letter = R.letter(ctx)
    assert "D441-5" not in letter and "40 €" not in letter and "Indemnité forfaitaire" not in letter
    assert "1344-1" in letter


# -- values are printed, never evaluated -------------------------------------------------------------

EVIL = '<script>alert("x")</script> {{ 7*7 }} {% if true %}BOOM{% endif %} & Co'


def test_injection_in_names_and_addresses_is_harmless():
    ctx = ctx_for(
        "reminder_2",
        "email",
        "fr",
        name=EVIL,
        street="<img src=x onerror=alert(1)>\n{{ config }}",
        city="{% raw %}Lyon",
    )
    mail = R.email(ctx)
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert (
        "{{ 7*7 }}" in mail.html and "49" not in mail.html and "BOOM" not in mail.html.replace("{% if true %}BOOM", "")
    )
    assert EVIL in mail.text  # the text part prints it literally
    letter = R.letter(
        ctx_for("reminder_2", "letter", "fr", name=EVIL, street="<img src=x onerror=alert(1)>", city="{{ 7*7 }}")
    )
    assert "<img" not in letter and "&lt;img src=x onerror=alert(1)&gt;" in letter
    assert "{{ 7*7 }}" in letter and "&lt;script&gt;" in letter
    sms = R.sms(ctx_for("reminder_2", "sms", "fr"))
    assert "{{" not in sms


def test_templates_run_sandboxed(tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(R.dir, root)
    (root / "sms" / "fr" / "reminder_2.j2").write_text(
        "{% block text %}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}", encoding="utf-8"
    )
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        Renderer(CFG, root).sms(ctx_for("reminder_2", "sms", "fr"))


def test_a_template_typo_stops_the_run_before_anything_is_sent(tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(R.dir, root)
    (root / "email" / "en" / "due.j2").write_text(
        "{% block subject %}{{ custmer.name }}{% endblock %}", encoding="utf-8"
    )
    with pytest.raises(UserError, match=r"email/en/due: .*custmer"):
        check_templates(Renderer(CFG, root), {"email"}, {"due"})
    check_templates(R, {"email", "sms", "letter", "registered_letter", "phone"}, {"due", "formal_notice", "call_1"})


def test_stage_without_its_own_template_uses_default():
    assert R.stage_template("email", "fr", "some_new_stage") == "email/fr/default.j2"
    assert R.stage_template("letter", "en", "formal_notice") == "letters/en/formal_notice.j2"


# -- preview -----------------------------------------------------------------------------------------


def test_preview_renders_each_channel():
    assert "Deuxième relance" in preview("reminder_2", "email", "fr")
    assert preview("reminder_2", "email", "en", fmt="text").startswith("Boulangerie Martin SARL")
    eml = email.message_from_bytes(preview("due", "email", "fr", fmt="eml"), policy=email.policy.default)
    assert eml["Subject"].startswith("Votre facture arrive à échéance") and eml.get_body(("html",)) is not None
    assert "GSM-7, 1 part(s)" in preview("reminder_2", "sms", "fr")
    pdf = preview("formal_notice", "registered_letter", "en")
    assert pdf.startswith(b"%PDF")
    assert "1." in preview("call_1", "phone", "en")
    assert "Dossier" in preview("litigation", "handoff", "fr")
    with pytest.raises(UserError):
        preview("due", "fax", "fr")


# -- SMS length ----------------------------------------------------------------------------------------


def test_gsm7_lengths_and_parts():
    assert segment("a" * 160).count == 1
    long = segment("a" * 161)
    assert long.encoding == "GSM-7" and long.count == 2 and [len(p) for p in long.parts] == [153, 8]
    assert segment("€" * 80).units == 160 and segment("€" * 80).count == 1  # extension chars count twice
    split = segment("a" * 152 + "€" + "b" * 10)  # 164 septets; the escape pair is not cut between parts
    assert split.parts == ("a" * 152, "€" + "b" * 10)


def test_ucs2_lengths_and_parts():
    assert segment("ê" * 70) == segment("ê" * 70) and segment("ê" * 70).encoding == "UCS-2"
    assert segment("ê" * 70).count == 1 and segment("ê" * 71).count == 2
    assert [len(p) for p in segment("ê" * 134).parts] == [67, 67]
    emoji = segment("a" * 66 + "😀" + "b" * 10)  # 78 units; a surrogate pair stays whole
    assert emoji.parts[0] == "a" * 66 and emoji.parts[1].startswith("😀")


def test_french_sms_fits_in_gsm7():
    text = normalise(
        f"Relance Démo : 2 factures impayées, total 1{NNBSP}234,56{NBSP}€ ; réglez-les dès que possible. Merci, l’équipe Œuvre",
        transliterate=True,
    )
    assert "1 234,56 €" in text and "l'équipe" in text and "OEuvre" in text and "dès que" in text
    assert segment(text).encoding == "GSM-7"
    assert segment(normalise("Fête", transliterate=False)).encoding == "UCS-2"


def test_rendered_sms_is_one_part():
    for lang in ("fr", "en"):
        body = normalise(R.sms(ctx_for("reminder_2", "sms", lang)), True)
        assert segment(body).encoding == "GSM-7" and segment(body).count == 1, body


# -- quiet hours -------------------------------------------------------------------------------------


def test_sms_quiet_hours_in_the_customers_country():
    cfg = SmsCfg()
    utc = UTC
    assert quiet_reason(datetime(2026, 3, 17, 6, 59, tzinfo=utc), "FR", cfg)  # 07:59 in Paris
    assert quiet_reason(datetime(2026, 3, 17, 7, 0, tzinfo=utc), "FR", cfg) is None  # 08:00
    assert quiet_reason(datetime(2026, 3, 17, 19, 0, tzinfo=utc), "FR", cfg)  # 20:00 in Paris
    assert quiet_reason(datetime(2026, 3, 17, 19, 30, tzinfo=utc), "GB", cfg) is None  # 19:30 in London
    assert "sunday" in quiet_reason(datetime(2026, 3, 15, 10, 0, tzinfo=utc), "FR", cfg)
    assert "holiday" in quiet_reason(datetime(2026, 5, 1, 10, 0, tzinfo=utc), "FR", cfg)  # 1 May
    assert quiet_reason(datetime(2026, 5, 1, 10, 0, tzinfo=utc), "GB", cfg) is None  # not a UK holiday
    assert quiet_reason(datetime(2026, 7, 14, 10, 0, tzinfo=utc), "BE", cfg) is None
    # every time zone of the country must be in the window: 14:00 UTC is 04:00 in Hawaii
    assert quiet_reason(datetime(2026, 3, 17, 14, 0, tzinfo=utc), "US", cfg)


# -- priority ----------------------------------------------------------------------------------------


def test_recovery_curve_and_priority():
    curve = CFG.worklists.recovery_curve
    assert recovery_chance(-5, curve) == 1.0 and recovery_chance(0, curve) == 1.0
    assert recovery_chance(90, curve) == pytest.approx(0.9) and recovery_chance(45, curve) == pytest.approx(0.95)
    assert recovery_chance(365, curve) == pytest.approx(0.1) and recovery_chance(800, curve) == pytest.approx(0.1)
    assert recovery_chance(227, curve) == pytest.approx(0.5, abs=0.01)
    recent = [{"open_amount": Decimal("1000.00"), "days_past_due": 30}]
    old = [{"open_amount": Decimal("3000.00"), "days_past_due": 400}]
    assert priority(recent, curve) == Decimal("966.67") and priority(old, curve) == Decimal("300.00")


def test_email_addresses_sendgrid_would_refuse():
    for good in ("a@b.example", "jean.dupont+ar@compta.example.co.uk", "x_y@xn--bcher-kva.example"):
        assert valid_email(good), good
    for bad in (
        None,
        "",
        "no-at-sign",
        "jean..dupont@x.example",
        ".jean@x.example",
        "jean.@x.example",
        "a@b",
        "a b@c.example",
        "a@-b.example",
        "a@b.example ",
        "Jean <a@b.example>",
        "a@b.c0m1",
    ):
        assert not valid_email(bad), bad


def test_spreadsheet_formulas_are_neutralised():
    assert csv_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)" and csv_safe("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert csv_safe("+33612345678") == "+33612345678" and csv_safe("-12.50") == "-12.50"
    assert csv_safe("Dupont SARL") == "Dupont SARL"


# -- the wording fits the facts on the day the message leaves (contract §3) ----------------------------

RUN = date(2026, 3, 16)


def _one_invoice(days_past_due: int) -> list[dict]:
    from datetime import timedelta

    due = RUN - timedelta(days=days_past_due)
    return [
        {
            "invoice_id": "INV-9",
            "kind": "invoice",
            "issue_date": due - timedelta(days=30),
            "due_date": due,
            "amount": Decimal("500.00"),
            "open_amount": Decimal("500.00"),
            "days_past_due": days_past_due,
        }
    ]


def _texts(stage: str, lang: str, invoices: list[dict]) -> dict[str, str]:
    amount = sum((i["open_amount"] for i in invoices), Decimal("0.00"))
    email_ctx = ctx_for(stage, "email", lang, invoices=invoices, amount_due=amount)
    mail = R.email(email_ctx)
    letter = R.letter(ctx_for(stage, "letter", lang, invoices=invoices, amount_due=amount))
    return {
        "subject": mail.subject,
        "text": " ".join(mail.text.split()),
        "html": " ".join(mail.html.split()),
        "letter": " ".join(letter.split()),
    }


# (state, days past due, French must say, English must say) — worked from the contract's wording rule
SITUATIONS = [
    (
        "not_due",
        -5,
        "la facture ci-dessous arrive prochainement à échéance, le 21/03/2026",
        "the invoice below falls due shortly, on 21 March 2026",
    ),
    ("due_today", 0, "la facture ci-dessous arrive à échéance ce jour", "the invoice below falls due today"),
    (
        "overdue",
        516,
        "la facture ci-dessous était payable le 16/10/2024",
        "the invoice below was due on 16 October 2024",
    ),
]


@pytest.mark.parametrize("stage", ["preventive", "due"])
@pytest.mark.parametrize("state,days,fr,en", SITUATIONS)
def test_wording_fits_where_the_invoice_stands(stage, state, days, fr, en):
    for lang, says in (("fr", fr), ("en", en)):
        out = _texts(stage, lang, _one_invoice(days))
        for part in ("text", "html", "letter"):
            assert says in out[part], (stage, lang, part, out[part][:400])
        everything = " ".join(out.values())
        if state != "due_today":
            assert "échéance ce jour" not in everything and "due today" not in everything, (stage, lang)
        if state != "not_due":
            assert "prochaine" not in everything and "due soon" not in everything and "shortly" not in everything
        if state != "overdue":
            assert "était payable" not in everything and "was due on" not in everything
    if state == "overdue":  # the subjects too: an invoice 516 days late is not "due today" nor "due soon"
        assert _texts(stage, "fr", _one_invoice(days))["subject"].startswith("Votre facture en attente de règlement")
        assert _texts(stage, "en", _one_invoice(days))["subject"].startswith("Your invoice awaiting payment")


def test_invoices_in_different_states_are_each_named():
    invoices = _one_invoice(12) + [
        dict(_one_invoice(0)[0], invoice_id="INV-10"),
        dict(_one_invoice(0)[0], invoice_id="INV-11"),
    ]
    fr = _texts("due", "fr", invoices)["text"]
    assert (
        "la facture INV-9 était payable le 04/03/2026 et les factures INV-10 et INV-11 arrivent à échéance ce jour"
        in fr
    ), fr
    en = _texts("due", "en", invoices)["text"]
    assert "invoice INV-9 was due on 4 March 2026 and invoices INV-10 and INV-11 fall due today" in en, en


@pytest.mark.parametrize("stage", ["call_1", "reminder_2", "call_2", "formal_notice", "amicable", "litigation"])
def test_later_stages_never_say_due_today(stage):
    for lang in ("fr", "en"):
        texts = [
            R.email(ctx_for(stage, "email", lang)).text,
            R.letter(ctx_for(stage, "letter", lang)),
            R.sms(ctx_for(stage, "sms", lang)),
            R.script(ctx_for(stage, "phone", lang)),
        ]
        for text in texts:
            assert "échéance ce jour" not in text and "due today" not in text and "prochainement" not in text, (
                stage,
                lang,
            )


# -- singular and plural ---------------------------------------------------------------------------------

PLURAL_ONLY = {
    "fr": re.compile(
        r"les factures|ces factures|vos factures|leur règlement|leur échéance|factures suivantes|"
        r"demeurent|restent|arrivent|étaient|\bvos \d+ factures|\b1 factures|échues",
        re.I,
    ),
    "en": re.compile(
        r"these invoices|your invoices|invoices remain|invoices fall|(settle|settling|receive) them|\btheir\b|were due|"
        r"\b1 invoices|invoices are|\bremain unpaid",
        re.I,
    ),
}
SINGULAR_ONLY = {
    "fr": re.compile(
        r"la facture suivante|la facture ci-dessous|cette facture|votre facture|son règlement|"
        r"son échéance|demeure impayée|reste impayée|\bechue\b|Taux appliqués",
        re.I,
    ),
    "en": re.compile(
        r"this invoice|your invoice\b|invoice remains|invoice falls|\bits\b|was due|invoice is\b|"
        r"Rates applied",
        re.I,
    ),
}
ALL_STAGES = ["preventive", "due", "call_1", "reminder_2", "call_2", "formal_notice", "amicable", "litigation"]


def _every_text(stage: str, lang: str, invoices: list[dict]) -> dict[str, str]:
    amount = sum((i["open_amount"] for i in invoices), Decimal("0.00"))
    kw = {"invoices": invoices, "amount_due": amount}
    if stage in ("formal_notice", "litigation"):
        interest = sum((i.get("interest") or Decimal("0.00") for i in invoices), Decimal("0.00"))
        kw.update(
            interest_amount=interest,
            indemnity_amount=Decimal("40.00") * len(invoices),
            charges_total=interest + Decimal("40.00") * len(invoices),
        )
    mail = R.email(ctx_for(stage, "email", lang, **kw))
    out = {
        "email subject": mail.subject,
        "email text": mail.text,
        "email html": re.sub(r"<[^>]+>", " ", mail.html),
        "sms": R.sms(ctx_for(stage, "sms", lang, **kw)),
        "letter": re.sub(r"<[^>]+>", " ", R.letter(ctx_for(stage, "letter", lang, **kw))),
        "registered": re.sub(r"<[^>]+>", " ", R.letter(ctx_for(stage, "registered_letter", lang, **kw))),
        "script": R.script(ctx_for(stage, "phone", lang, **kw)),
    }
    return {k: " ".join(v.split()) for k, v in out.items()}


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_one_invoice_is_singular_and_several_are_plural_everywhere(stage, lang):
    three = sample_row(stage, "email", lang)["invoices"]
    if len(three) == 1:  # preventive and due samples hold one invoice: make three in the same state
        three = [dict(three[0], invoice_id=f"{three[0]['invoice_id']}-{n}") for n in range(3)]
    one = [three[0]]
    for channel, text in _every_text(stage, lang, one).items():
        found = PLURAL_ONLY[lang].search(text)
        assert not found, (stage, lang, channel, "one invoice", found and found.group(0), text[:300])
    for channel, text in _every_text(stage, lang, three).items():
        found = SINGULAR_ONLY[lang].search(text)
        assert not found, (stage, lang, channel, "three invoices", found and found.group(0), text[:300])


# -- the plain-text email's invoice table ------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_plain_text_invoice_columns_line_up_and_never_touch(lang):
    from datetime import timedelta

    base = sample_row("reminder_2", "email", lang)["invoices"]
    invoices = [
        dict(base[0], invoice_id="INV-2026-000123-LONG", issue_date=date(2025, 9, 30), due_date=date(2025, 12, 31)),
        dict(base[1], due_date=date(2026, 9, 17) - timedelta(days=200)),
    ]
    text = R.email(ctx_for("reminder_2", "email", lang, invoices=invoices)).text
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(R.i18n[lang]["invoice"]))
    table = lines[head : head + 3]
    t = R.i18n[lang]
    starts = [table[0].index(t["issue_date"]), table[0].index(t["due_date"])]
    for row, inv in zip(table[1:], invoices):
        issue = f_date_of(lang, inv["issue_date"])
        due = f_date_of(lang, inv["due_date"])
        assert row.index(issue) == starts[0] and row.index(due, starts[0] + len(issue)) == starts[1], (row, table[0])
        assert row[starts[0] - 2 : starts[0]] == "  " and row[starts[1] - 2 : starts[1]] == "  "  # two spaces apart
    assert len({len(line.rstrip()) for line in table}) == 1  # the amounts right-aligned on one edge
    if lang == "en":  # "31 December 2025" is 16 characters: the old 14-character column ran into the next
        assert "31 December 2025  " in table[1]


def f_date_of(lang: str, d: date) -> str:
    from tasks.dispatch.render import DATE_FORMATS, LOCALES, _date

    return _date(d, DATE_FORMATS[lang], LOCALES[lang])


# -- the formal notice states its rate and a human reference ----------------------------------------------


@pytest.mark.parametrize(
    "lang,says",
    [
        (
            "fr",
            f"Taux appliqué{NBSP}: 12,15{NBSP}% (taux de référence de la BCE 2,15{NBSP}% + 10 points), 1er semestre 2026",
        ),
        ("en", "Rate applied: 12.15% (ECB reference rate 2.15% + 10 points), first half of 2026"),
    ],
)
def test_formal_notice_states_the_rate_and_a_human_reference(lang, says):
    import base64
    import hashlib

    ctx = ctx_for("formal_notice", "registered_letter", lang, action_id="C000933|EUR|1|formal_notice")
    letter = " ".join(re.sub(r"<[^>]+>", " ", R.letter(ctx)).split())  # no-break spaces become spaces
    assert " ".join(says.split()) in letter
    # the reference: MD + first 40 bits of SHA-256(action id) in base32, two groups of four (templates/README.md)
    code = base64.b32encode(hashlib.sha256(b"C000933|EUR|1|formal_notice").digest()[:5]).decode()
    ours = {"fr": "Notre référence", "en": "Our reference"}[lang]
    assert " ".join(f"{ours}{R.i18n[lang]['colon']} MD-{code[:4]}-{code[4:]}".split()) in letter
    assert "C000933|EUR" not in letter
    # the invoices are the reference to quote on the transfer
    quote = {"fr": "Référence à indiquer", "en": "Reference to quote"}[lang]
    assert (
        " ".join(f"{quote}{R.i18n[lang]['colon']} INV-2026-000123, INV-2026-000187, INV-2026-000201".split()) in letter
    )
    two_halves = ctx_for(
        "formal_notice",
        "registered_letter",
        lang,
        rates=[
            {"half_year": "2025-H2", "reference_rate": Decimal("2.15"), "annual_rate": Decimal("12.15")},
            {"half_year": "2026-H1", "reference_rate": Decimal("2.00"), "annual_rate": Decimal("12.00")},
        ],
    )
    text = " ".join(re.sub(r"<[^>]+>", " ", R.letter(two_halves)).split())
    assert ({"fr": "Taux appliqués", "en": "Rates applied"}[lang]) in text
    assert {"fr": "2d semestre 2025", "en": "second half of 2025"}[lang] in text and (
        "12,00" if lang == "fr" else "12.00%"
    ) in text
