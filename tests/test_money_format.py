"""relance.core.money: amounts, numbers and percentages for a reader (babel), worked by hand.

French: a narrow no-break space (U+202F) between thousands, a no-break space (U+00A0) before the
currency and before "%"; English (en_GB): the symbol first, "," between thousands. Rounding is
half up (the contract rounds charges half up to the cent), to the currency's digits (JPY: none).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from relance.core.money import currency_symbol, format_decimal, format_money, format_percent, half_up

NNBSP, NBSP = "\u202f", "\u00a0"


@pytest.mark.parametrize(
    "amount, currency, locale, expected",
    [
        (D("1234.56"), "EUR", "fr_FR", f"1{NNBSP}234,56{NBSP}€"),
        (D("1234.56"), "EUR", "en_GB", "€1,234.56"),
        (D("40"), "EUR", "fr_FR", f"40,00{NBSP}€"),
        (D("1234.56"), "USD", "fr_FR", f"1{NNBSP}234,56{NBSP}$US"),
        (D("1234.56"), "USD", "en_GB", "US$1,234.56"),
        (D("1234.56"), "GBP", "en_GB", "£1,234.56"),
        # JPY has no minor unit: 1 234.50 rounds half up to 1 235 (babel alone: 1 234, half to even)
        (D("1234.50"), "JPY", "fr_FR", f"1{NNBSP}235{NBSP}JPY"),
        (D("1234"), "JPY", "en_GB", "JP¥1,234"),
        # negative amounts (a credit): the minus sign before the number, or before the symbol in English
        (D("-1234.56"), "EUR", "fr_FR", f"-1{NNBSP}234,56{NBSP}€"),
        (D("-1234.56"), "EUR", "en_GB", "-€1,234.56"),
        (D("0"), "EUR", "fr_FR", f"0,00{NBSP}€"),
    ],
)
def test_format_money(amount, currency, locale, expected):
    assert format_money(amount, currency, locale) == expected


def test_money_rounds_half_up_to_the_cent():
    # 0.125 is a tie: half up gives 0.13 (babel's own half-to-even would print 0.12)
    assert format_money(D("0.125"), "EUR", "fr_FR") == f"0,13{NBSP}€"
    assert format_money(D("0.135"), "EUR", "en_GB") == "€0.14"
    assert format_money(D("2.344999"), "EUR", "en_GB") == "€2.34"
    # a tie below zero goes away from zero, like ROUND_HALF_UP on the contract's charges
    assert format_money(D("-0.125"), "EUR", "fr_FR") == f"-0,13{NBSP}€"
    # a negative amount that rounds to zero is shown without a minus sign
    assert format_money(D("-0.004"), "EUR", "fr_FR") == f"0,00{NBSP}€"
    assert half_up(D("1.005"), 2) == D("1.01") and half_up(D("-1.005"), 2) == D("-1.01")


def test_large_amounts_are_exact():
    # 9e15 fits DECIMAL(18,2); two of them (a DECIMAL(38,2) sum) are 1.8e16 — no float, no rounding
    nine = D("9000000000000000.00")
    assert format_money(nine, "EUR", "fr_FR") == f"9{NNBSP}000{NNBSP}000{NNBSP}000{NNBSP}000{NNBSP}000,00{NBSP}€"
    assert format_money(nine + D("0.01"), "EUR", "en_GB") == "€9,000,000,000,000,000.01"
    assert format_money(nine * 2 + D("0.07"), "EUR", "en_GB") == "€18,000,000,000,000,000.07"
    # 38 significant digits (the widest DuckDB sum) is beyond the default 28-digit decimal context
    widest = D("123456789012345678901234567890123456.78")
    assert format_money(widest, "EUR", "en_GB") == "€123,456,789,012,345,678,901,234,567,890,123,456.78"


def test_money_is_never_a_float():
    with pytest.raises(TypeError):
        format_money(1234.56, "EUR", "fr_FR")
    with pytest.raises(TypeError):
        format_decimal(0.1, "fr_FR", 2)
    # an int or a decimal string is exact
    assert format_money(40, "EUR", "en_GB") == "€40.00"
    assert format_money("1234.56", "EUR", "en_GB") == "€1,234.56"


def test_format_decimal_and_percent():
    assert format_decimal(D("146.25"), "fr_FR", 1) == "146,3"  # half up (babel alone: 146,2)
    assert format_decimal(D("146.25"), "en_GB", 1) == "146.3"
    assert format_decimal(1234567, "fr_FR") == f"1{NNBSP}234{NNBSP}567"
    assert format_decimal(D("1234.5"), "en_GB", 0) == "1,235"
    assert format_decimal(D("-0.04"), "en_GB", 1) == "0.0"
    # a value already in percent: 52.381 % → 52.4 %
    assert format_percent(D("52.381"), "fr_FR", 1) == f"52,4{NBSP}%"
    assert format_percent(D("52.381"), "en_GB", 1) == "52.4%"
    assert format_percent(D("12.125"), "fr_FR", 2) == f"12,13{NBSP}%"
    assert format_percent(D("12.15"), "en_GB", 2) == "12.15%"
    assert format_percent(90, "fr_FR", 0) == f"90{NBSP}%" and format_percent(90, "en_GB", 0) == "90%"
    assert format_percent(D("1234.5"), "fr_FR", 1) == f"1{NNBSP}234,5{NBSP}%"
    assert currency_symbol("EUR", "fr_FR") == "€" and currency_symbol("USD", "fr_FR") == "$US"
