"""Phones (contract §1, §3; issue 12 §4): one rule, relance.core.phones, for ingest and dispatch.

A number written in the national format of the customer's country ("06 12 34 56 78" in France)
is normalised to E.164 at load — it used to be dropped, and the customer's SMS were lost —
and SMS go only to mobiles: a landline (+33 5 …, +32 2 …) is loaded (calls use it), but its
`sms` delivery falls back to a letter."""

from __future__ import annotations

from datetime import date

import pytest

from relance.core import phones
from tasks.dispatch import dispatch
from tests.fakes.scenario import action, build, channels_config, customer, deliveries, events, invoice

# (written, country, E.164, kind) — worked from the ARCEP / BIPT / Ofcom / BNetzA numbering plans
NUMBERS = [
    ("06 12 34 56 78", "FR", "+33612345678", "mobile"),  # 06 and 07: French mobiles
    ("07 56 12 34 56", "FR", "+33756123456", "mobile"),
    ("05 36 49 12 34", "FR", "+33536491234", "landline"),  # 01-05: French geographic numbers
    ("+33 1 99 00 12 34", "BE", "+33199001234", "landline"),  # E.164: the country does not matter
    ("09 72 10 12 34", "FR", "+33972101234", "VoIP number"),  # 09: French VoIP
    ("0470 12 34 56", "BE", "+32470123456", "mobile"),  # 04xx: Belgian mobiles
    ("02 555 12 34", "BE", "+3225551234", "landline"),  # 02: Brussels
    ("0151 12345678", "DE", "+4915112345678", "mobile"),
    ("030 1234567", "DE", "+49301234567", "landline"),
    ("07700 900123", "GB", "+447700900123", "mobile"),  # Ofcom's range for drama: a mobile
    ("06 39 98 00 01", "FR", "+33639980001", "mobile"),  # ARCEP's range for fiction: a mobile
    ("0033 6 12 34 56 78", "FR", "+33612345678", "mobile"),  # 00: the international prefix
    ("+1 202 555 0100", "US", "+12025550100", "landline or mobile"),  # the US does not tell them apart
]


@pytest.mark.parametrize("written,country,e164,kind", NUMBERS, ids=[n[0] for n in NUMBERS])
def test_a_number_is_normalised_and_typed(written, country, e164, kind):
    assert phones.normalise(written, country) == (e164, None)
    assert phones.kind(e164) == kind
    assert (phones.sms_problem(e164) is None) == (kind == "mobile")
    assert phones.call_problem(e164) is None


@pytest.mark.parametrize(
    "written,country",
    [
        ("06 12 34 56", "FR"),  # 8 digits: too short for France
        ("06 12 34 56 78 90", "FR"),  # too long
        ("tél. 06 12 34 56 78", "FR"),  # words around the number
        ("+", "FR"),
    ],
)
def test_a_number_that_cannot_be_is_dropped(written, country):
    e164, problem = phones.normalise(written, country)
    assert e164 is None and problem.startswith(f"is not a phone number in {country}")


def test_why_no_sms():
    assert phones.sms_problem(None) == "no phone number"
    assert phones.sms_problem("+33536491234") == "phone +33536491234 is a landline, not a mobile (no SMS)"
    assert phones.sms_problem("+33612345678") is None
    # a French mobile written nationally for a Belgian customer is a possible Belgian number in no
    # known range: loaded (a collector can call and correct it), never texted
    assert phones.normalise("0612345678", "BE") == ("+32612345678", None)
    assert phones.sms_problem("+32612345678") == "phone +32612345678 is not known to be a mobile (no SMS)"
    assert (
        phones.call_problem("06 12 34")
        == "phone '06 12 34' is not a phone number in FR (write it in E.164 like +33612345678, or in the national format of the customer's country like 06 12 34 56 78)"
    )


AS_OF = date(2026, 3, 16)  # a Monday


def test_sms_go_to_mobiles_only_and_a_landline_falls_back_to_a_letter(tmp_path):
    """Through ingest and dispatch: a French mobile written "06 39 98 00 02" gets its SMS (it was
    dropped at load); a French and a Belgian landline get a letter instead, with the reason."""
    db = build(
        tmp_path,
        customers=[
            customer("C1", phone="06 39 98 00 02"),
            customer("C2", phone="05 36 49 12 34"),
            customer("C3", phone="+32 2 555 12 34", country="BE", city="Bruxelles", postal_code="1000"),
        ],
        invoices=[invoice(f"F{i}", f"C{i}", "2026-01-05", "2026-02-04", "100.00") for i in (1, 2, 3)],
        as_of=AS_OF,
        actions=[action(f"A{i}", f"C{i}", "reminder_2", [f"F{i}"], deliveries=[(f"S{i}", "sms")]) for i in (1, 2, 3)],
    )
    dispatch(str(db), AS_OF, str(tmp_path / "out"), channels_config=channels_config(tmp_path))
    rows = deliveries(db)
    assert rows["S1"]["channel"] == "sms" and rows["S1"]["status"] == "sent"
    assert "+33639980002" in open(rows["S1"]["artifact_path"], encoding="utf-8").read()
    for d, phone in (("S2", "+33536491234"), ("S3", "+3225551234")):
        assert (rows[d]["channel"], rows[d]["fallback_from"]) == ("letter", "sms"), rows[d]
        assert f"phone {phone} is a landline, not a mobile (no SMS): falls back to letter" in events(db, d)[0]["detail"]
