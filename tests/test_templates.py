"""Templates: wording per stage, channel and language; amounts and dates per language; tone;
values printed harmlessly; the SMS, quiet-hours, priority and address rules they rely on."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from relance.errors import UserError
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
    ctx = ctx_for("formal_notice", "email", "en", currency="GBP", charges_total=Decimal("20.73"),
                  indemnity_currency="EUR")
    mail = R.email(ctx)
    # the invoices in pounds, the fixed indemnity stays in euros and is added beside the total
    assert "£1,789.66" in mail.text
    assert "£1,810.39 + €120.00" in mail.text


# -- tone ------------------------------------------------------------------------------------------

THREATS = re.compile(r"huissier|poursuite|judiciaire|tribunal|injonction|mise en demeure|contentieu|"
                     r"bailiff|court|legal action|proceedings|formal notice|lawyer|avocat", re.I)


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
    money = {"fr": (f"1{NNBSP}930,39{NBSP}€", f"20,73{NBSP}€", f"120,00{NBSP}€"),
             "en": ("€1,930.39", "€20.73", "€120.00")}[lang]
    for amount in money:  # total claimed, interest, indemnities — as the tables say
        assert amount in letter


def test_formal_notice_to_a_consumer_has_no_indemnity():
    ctx = ctx_for("formal_notice", "registered_letter", "fr", segment="b2c", indemnity_amount=None,
                  charges_total=Decimal("20.73"))
    letter = R.letter(ctx)
    assert "D441-5" not in letter and "40 €" not in letter and "Indemnité forfaitaire" not in letter
    assert "1344-1" in letter


# -- values are printed, never evaluated -------------------------------------------------------------

EVIL = '<script>alert("x")</script> {{ 7*7 }} {% if true %}BOOM{% endif %} & Co'


def test_injection_in_names_and_addresses_is_harmless():
    ctx = ctx_for("reminder_2", "email", "fr", name=EVIL, street="<img src=x onerror=alert(1)>\n{{ config }}",
                  city="{% raw %}Lyon")
    mail = R.email(ctx)
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "{{ 7*7 }}" in mail.html and "49" not in mail.html and "BOOM" not in mail.html.replace("{% if true %}BOOM", "")
    assert EVIL in mail.text  # the text part prints it literally
    letter = R.letter(ctx_for("reminder_2", "letter", "fr", name=EVIL, street="<img src=x onerror=alert(1)>",
                              city="{{ 7*7 }}"))
    assert "<img" not in letter and "&lt;img src=x onerror=alert(1)&gt;" in letter
    assert "{{ 7*7 }}" in letter and "&lt;script&gt;" in letter
    sms = R.sms(ctx_for("reminder_2", "sms", "fr"))
    assert "{{" not in sms


def test_templates_run_sandboxed(tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(R.dir, root)
    (root / "sms" / "fr" / "reminder_2.j2").write_text(
        "{% block text %}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}", encoding="utf-8")
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        Renderer(CFG, root).sms(ctx_for("reminder_2", "sms", "fr"))


def test_a_template_typo_stops_the_run_before_anything_is_sent(tmp_path):
    root = tmp_path / "templates"
    shutil.copytree(R.dir, root)
    (root / "email" / "en" / "due.j2").write_text("{% block subject %}{{ custmer.name }}{% endblock %}", encoding="utf-8")
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
    text = normalise(f"Relance Démo : 2 factures impayées, total 1{NNBSP}234,56{NBSP}€ ; réglez-les dès que possible. Merci, l’équipe Œuvre",
                     transliterate=True)
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
    utc = timezone.utc
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
    for bad in (None, "", "no-at-sign", "jean..dupont@x.example", ".jean@x.example", "jean.@x.example",
                "a@b", "a b@c.example", "a@-b.example", "a@b.example ", "Jean <a@b.example>", "a@b.c0m1"):
        assert not valid_email(bad), bad


def test_spreadsheet_formulas_are_neutralised():
    assert csv_safe("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)" and csv_safe("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert csv_safe("+33612345678") == "+33612345678" and csv_safe("-12.50") == "-12.50"
    assert csv_safe("Dupont SARL") == "Dupont SARL"
