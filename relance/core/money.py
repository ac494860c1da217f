"""Amounts, numbers and percentages as a reader sees them: the one place that formats them (babel).

    format_money(Decimal("1234.56"), "EUR", "fr_FR")  → "1 234,56 €"   (en_GB: "€1,234.56")
    format_decimal(Decimal("146.25"), "fr_FR", 1)     → "146,3"
    format_percent(Decimal("52.381"), "fr_FR", 1)     → "52,4 %"       (en_GB: "52.4%")

The letters, emails and SMS (tasks/dispatch/render.py), the approval list (tasks/approve.py) and
the finance report (tasks/report/) all go through here, so an amount reads the same everywhere.
The characters are babel's (CLDR): in French a narrow no-break space (U+202F) between thousands
and a no-break space (U+00A0) before the currency symbol and before "%".

Money stays `Decimal`: a float is refused (TypeError), never formatted. Values are rounded
half up (away from zero on a tie, as the contract rounds charges) to the currency's digits
(EUR 2, JPY 0) or to the digits asked — babel alone would round half to even (0.125 → 0.12).
A zero is never shown with a minus sign. Any number of digits is formatted exactly (the
calculation runs with 80 significant digits; DuckDB sums are DECIMAL(38,2)).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import lru_cache

from babel import Locale
from babel import numbers as _babel

#: Wide enough for any DECIMAL(38, x) and its quantization (the default context holds 28 digits).
_CONTEXT = Context(prec=80)


def to_decimal(value: Decimal | int | str) -> Decimal:
    """`value` as a Decimal: a Decimal as is, an int or a decimal string exactly; a float (or a
    bool) is a TypeError — money never goes through binary floats."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (float, bool)) or not isinstance(value, (int, str)):
        raise TypeError(f"expected a Decimal, an int or a decimal string, not {type(value).__name__}: {value!r}")
    return Decimal(value)


def half_up(value: Decimal | int | str, digits: int) -> Decimal:
    """`value` rounded half up to `digits` decimals (2.345 → 2.35, -2.345 → -2.35); a zero is +0."""
    rounded = to_decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=_CONTEXT)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def currency_digits(currency: str) -> int:
    """The currency's decimals as amounts show them (EUR 2, JPY 0; an unknown code 2)."""
    return _babel.get_currency_precision(currency)


def currency_symbol(currency: str, locale: str) -> str:
    """The currency's symbol in the locale ("€"; USD: "$US" in fr_FR, "US$" in en_GB)."""
    return _babel.get_currency_symbol(currency, locale=locale)


def format_money(amount: Decimal | int | str, currency: str, locale: str) -> str:
    """An amount with its currency, rounded half up to the currency's digits:
    "1 234,56 €" (fr_FR), "€1,234.56" (en_GB), "-1 234,56 €", "1 235 JPY"."""
    value = half_up(amount, currency_digits(currency))
    with localcontext(_CONTEXT):
        return _babel.format_currency(value, currency, locale=locale)


def format_decimal(value: Decimal | int | str, locale: str, digits: int = 0) -> str:
    """A number with the locale's separators and exactly `digits` decimals, rounded half up:
    "1 234,57" (fr_FR, digits=2), "1,235" (en_GB, digits=0)."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    with localcontext(_CONTEXT):
        return _babel.format_decimal(half_up(value, digits), format=pattern, locale=locale)


@lru_cache(maxsize=64)
def _percent_pattern(locale: str, digits: int) -> str:
    """The locale's percent pattern ("#,##0 %" in fr_FR, "#,##0%" in en_GB) with `digits` decimals."""
    standard = Locale.parse(locale).percent_formats[None].pattern.split(";")[0]
    fraction = "." + "0" * digits if digits else ""
    return re.sub(r"[#,0]*0", lambda m: m.group(0) + fraction, standard, count=1)


def format_percent(value: Decimal | int | str, locale: str, digits: int = 1) -> str:
    """A value already in percent (52.381 means 52.381 %), rounded half up to `digits` decimals,
    with the locale's sign: "52,4 %" (fr_FR, no-break space), "52.4%" (en_GB)."""
    shown = half_up(value, digits)
    with localcontext(_CONTEXT):
        # babel's percent pattern multiplies by 100: hand it the fraction (exact: a shift of the exponent)
        return _babel.format_percent(shown.scaleb(-2), format=_percent_pattern(locale, digits), locale=locale)


def format_compact(value: Decimal | int | str, locale: str, currency: str | None = None) -> str:
    """A short label for a chart's axis: "1,2 M €" (fr_FR) or "€1.2M" (en_GB), "1,2 k" without currency."""
    number = to_decimal(value)
    with localcontext(_CONTEXT):
        if currency:
            return _babel.format_compact_currency(number, currency, locale=locale, fraction_digits=1)
        return _babel.format_compact_decimal(number, locale=locale, fraction_digits=1)
