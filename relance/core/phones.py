"""Phone numbers: the one rule shared by ingest (normalise at load) and dispatch (who gets an SMS).

Contract §1: a phone is written in E.164 (``+33612345678``) or in the national format of the
customer's ``country`` (``06 12 34 56 78``, ``0033 6 12 34 56 78``); it is stored in E.164.
Parsing and number types come from Google's libphonenumber (the ``phonenumbers`` package):

* A number that cannot be a phone number of its country (wrong length, letters, garbage) is
  dropped at load (``field_dropped``); the customer loads without it.
* A possible number is loaded even when the library does not know its range (numbering plans
  change faster than the library): calls can try it. It gets no SMS.
* SMS go only to numbers the library types as MOBILE. A landline (``+33 5 …``, ``+32 2 …``), a
  VoIP or toll-free number, and a number that may be either (``FIXED_LINE_OR_MOBILE``: the US
  and Canada do not tell them apart) get no SMS: the ``sms`` delivery falls back (contract §3).
* The ranges the regulators reserve for fiction (ARCEP 06 39 98 xx xx, Ofcom 07700 900 xxx),
  which relance's sample data and tests use so that no real person is ever texted, are mobiles
  (the library calls them invalid).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_COUNTRY = "FR"

#: E.164 prefix → total length of the reserved-for-fiction mobile ranges (see the module doc).
FICTION_MOBILES = {"+3363998": 12, "+447700900": 13}

#: Characters a written phone number may hold besides digits (spaces of all kinds included).
_ALLOWED = re.compile(r"\+?[0-9\s.\-/()]+")

_KINDS = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline or mobile",
    PhoneNumberType.VOIP: "VoIP number",
    PhoneNumberType.TOLL_FREE: "toll-free number",
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
    PhoneNumberType.PERSONAL_NUMBER: "personal number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "company number",
    PhoneNumberType.VOICEMAIL: "voicemail number",
}


@lru_cache(maxsize=1 << 20)
def normalise(raw: str | None, country: str | None = None) -> tuple[str | None, str | None]:
    """(E.164, None) for a phone number written in E.164 or in the national format of `country`
    (ISO 3166 alpha-2, default FR); (None, reason) when it cannot be a phone number."""
    if raw is None or not raw.strip():
        return None, "no phone number"
    text = raw.strip()
    region = (country or DEFAULT_COUNTRY).strip().upper()
    where = f"in {region}" if region in phonenumbers.SUPPORTED_REGIONS else "anywhere"
    bad = (
        f"is not a phone number {where} (write it in E.164 like +33612345678, "
        "or in the national format of the customer's country like 06 12 34 56 78)"
    )
    if not _ALLOWED.fullmatch(text):
        return None, bad
    try:
        number = phonenumbers.parse(text, region if region in phonenumbers.SUPPORTED_REGIONS else None)
    except NumberParseException:
        return None, bad
    if not phonenumbers.is_possible_number(number):
        return None, bad
    # E.164 written out (what format_number(E164) gives, at a third of its cost)
    zeros = "0" * (number.number_of_leading_zeros or 1) if number.italian_leading_zero else ""
    return f"+{number.country_code}{zeros}{number.national_number}", None


@lru_cache(maxsize=65536)
def kind(e164: str) -> str:
    """What a normalised number is: 'mobile', 'landline', … or 'unknown'."""
    for prefix, length in FICTION_MOBILES.items():
        if e164.startswith(prefix) and len(e164) == length:
            return "mobile"
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return "unknown"
    if not phonenumbers.is_valid_number(number):
        return "unknown"
    return _KINDS.get(phonenumbers.number_type(number), "unknown")


def call_problem(phone: str | None) -> str | None:
    """None when a call can be made to `phone` (as stored: E.164), else why not."""
    if not phone:
        return "no phone number"
    _, problem = normalise(phone, None)
    return f"phone {phone!r} {problem}" if problem else None


def sms_problem(phone: str | None) -> str | None:
    """None when an SMS can be sent to `phone` (a mobile), else why not."""
    problem = call_problem(phone)
    if problem:
        return problem
    what = kind(normalise(phone, None)[0])
    if what == "mobile":
        return None
    if what == "unknown":
        return f"phone {phone} is not known to be a mobile (no SMS)"
    return f"phone {phone} is a {what}, not a mobile (no SMS)"


# -- DuckDB ----------------------------------------------------------------------------------


def register(con) -> None:
    """Register phone_check(phone, country) → struct(e164, problem) on a DuckDB connection:
    vectorised (an Arrow batch per call), each distinct value parsed once (cached)."""
    import duckdb
    import pyarrow as pa

    out_type = pa.struct([("e164", pa.string()), ("problem", pa.string())])

    def phone_check(phone, country):  # pyarrow arrays (no annotations: DuckDB evaluates them)
        checked = [
            normalise(p, c) if p is not None else (None, None) for p, c in zip(phone.to_pylist(), country.to_pylist())
        ]
        return pa.array([{"e164": e, "problem": why} for e, why in checked], type=out_type)

    try:
        con.remove_function("phone_check")
    except duckdb.Error:  # not registered on this connection yet
        pass
    con.create_function(
        "phone_check",
        phone_check,
        ["VARCHAR", "VARCHAR"],
        duckdb.struct_type({"e164": "VARCHAR", "problem": "VARCHAR"}),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
