"""Late-payment charges on formal notices (contract §3; Code de commerce L441-10, D441-5), by hand.

A two-stage ladder (due at 0, formal_notice at +30), min gap 1 day, and a custom rate table:
2025-H2 4.00 % and 2026-H1 0.00 %, margin 10 points → 14 % for July–December 2025 and 10 % for
January–June 2026, 365-day year. Runs on Mon 2026-01-19 (due) and Tue 2026-01-20 (formal notice).

B2B, EUR, at 2026-01-20:
  I1 1000.00 due 2025-12-01: late days 2025-12-02..2026-01-20 = 30 days in 2025-H2 + 20 in 2026-H1
     1000 × (30 × 14 + 20 × 10) / 100 / 365 = 6200 / 365 = 16.9863… → 16.99
  I2   18.25 due 2026-01-19: 1 day at 10 % = 18.25 × 10 / 36500 = 0.005 exactly → 0.01 (half-up)
  I3   18.25 due 2026-01-19: the same, rounded per invoice → 0.01 (0.02 for the two, not 0.01)
  I4  100.00 due 2026-01-25: not overdue → not claimed, no charge
  interest 17.01, indemnity 3 × 40.00 = 120.00, total 137.01, amount due 1036.50
B2B, USD: U1 1000.00 due 2025-12-01 → interest 16.99 USD; the 40.00 EUR indemnity is stated in
  EUR and left out of the USD total (16.99).
B2C: K1 1000.00 due 2025-12-01 → formal notice without charges.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from relance.core.errors import PolicyError
from tests.ladder_helpers import customer, invoice, payment, query, run_days, unit, write_source

POLICY = """\
stages:
  - {code: due, offset_days: 0, channels: [email]}
  - {code: formal_notice, offset_days: 30, channels: [registered_letter], requires_approval: true,
     charged: true, formal: true, legal_notice: true, reference_prefix: MD}
min_gap_days: 1
aging_buckets: [{name: not_due, max_days: 0}, {name: overdue}]
late_payment_charges:
  applies_to_segments: [b2b]
  margin_points: "10.00"
  indemnity_per_invoice: "40.00"
  indemnity_currency: EUR
  days_in_year: 365
reference_rates:
"""
RATES = """\
  - {half_year: 2025-H2, rate: "4.00"}
  - {half_year: 2026-H1, rate: "0.00"}
"""


def _source(tmp_path):
    return write_source(
        tmp_path / "src",
        customers=[customer("B2B"), customer("B2C", segment="b2c")],
        invoices=[
            invoice("I1", "B2B", "2025-12-01", "1000.00"),
            invoice("I2", "B2B", "2026-01-19", "18.25"),
            invoice("I3", "B2B", "2026-01-19", "18.25"),
            invoice("I4", "B2B", "2026-01-25", "100.00"),
            invoice("U1", "B2B", "2025-12-01", "1000.00", currency="USD"),
            invoice("K1", "B2C", "2025-12-01", "1000.00"),
        ],
    )


def _policy(tmp_path, rates: str = RATES) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY + rates, encoding="utf-8")
    return str(path)


def test_interest_across_a_half_year_boundary_and_indemnity(tmp_path):
    db = str(tmp_path / "r.duckdb")
    run_days(_source(tmp_path), db, ["2026-01-19", "2026-01-20"], policy=_policy(tmp_path))

    notices = query(
        db,
        """
        select action_id, amount_due, invoice_ids, interest_amount, indemnity_amount, indemnity_currency, charges_total
        from dunning_actions where stage = 'formal_notice' order by action_id""",
    )
    assert notices == [
        ("B2B|EUR|1|formal_notice", D("1036.50"), ["I1", "I2", "I3"], D("17.01"), D("120.00"), "EUR", D("137.01")),
        ("B2B|USD|1|formal_notice", D("1000.00"), ["U1"], D("16.99"), D("40.00"), "EUR", D("16.99")),
        ("B2C|EUR|1|formal_notice", D("1000.00"), ["K1"], None, None, None, None),
    ]
    assert query(
        db,
        """
        select invoice_id, open_amount, days_late, interest_amount, indemnity_amount
        from action_charges where action_id = 'B2B|EUR|1|formal_notice' order by invoice_id""",
    ) == [
        ("I1", D("1000.00"), 50, D("16.99"), D("40.00")),
        ("I2", D("18.25"), 1, D("0.01"), D("40.00")),
        ("I3", D("18.25"), 1, D("0.01"), D("40.00")),
    ]
    assert query(
        db,
        """
        select half_year, period_start::varchar, period_end::varchar, days, reference_rate, annual_rate, interest
        from action_charge_periods where invoice_id = 'I1' order by period_start""",
    ) == [
        ("2025-H2", "2025-12-02", "2025-12-31", 30, D("4.0000"), D("14.0000"), D("11.5068493151")),  # 420000/36500
        ("2026-H1", "2026-01-01", "2026-01-20", 20, D("0.0000"), D("10.0000"), D("5.4794520548")),  # 200000/36500
    ]
    # the earlier `due` action states no charges
    assert query(db, "select count(*) from dunning_actions where stage = 'due' and interest_amount is null") == [(3,)]


def test_a_missing_half_year_rate_holds_only_the_units_whose_charges_need_it(tmp_path):
    """The policy has 2026-H1 only. On 01-20 the formal notices of B2B EUR and B2B USD would charge
    late days from 2025-12-02 (2025-H2): those two units wait, the reason in unit_stage; the night
    goes on: B2C's notice (no charges) is taken. Once the rate is added, the next run (01-21) takes
    them: I1 (and U1, in USD) 30 days at 14 % + 21 days at 10 % = 1000 × 630 / 36500 = 17.260… → 17.26; I2, I3
    2 days at 10 % = 18.25 × 20 / 36500 = 0.01 each: 17.28."""
    pol = _policy(tmp_path, '  - {half_year: 2026-H1, rate: "0.00"}\n')
    db = str(tmp_path / "r.duckdb")
    src = _source(tmp_path)
    run_days(src, db, ["2026-01-19", "2026-01-20"], policy=pol)  # no PolicyError
    assert query(db, "select action_id from dunning_actions where stage = 'formal_notice'") == [
        ("B2C|EUR|1|formal_notice",)
    ]
    for cur in ("EUR", "USD"):
        u = unit(db, "2026-01-20", "B2B", cur)
        assert (u["target_stage"], u["current_stage"], u["no_action_reason"], u["wait_reason"]) == (
            "formal_notice",
            "due",
            "missing_reference_rate",
            "missing_reference_rate",
        )
        assert u["wait_detail"] == (
            "no reference rate for 2025-H2 in the policy (reference_rates: add - "
            '{half_year: 2025-H2, rate: "…"}), needed for the charges of formal_notice'
        )
    assert unit(db, "2026-01-20", "B2C")["wait_reason"] is None
    # the report lists them, with the half-year to add
    import html
    from pathlib import Path

    from tasks.report import report

    out = report(db, date(2026, 1, 20), str(tmp_path / "rep"), language="en", policy=pol)
    page = html.unescape(Path(out["html"]).read_text(encoding="utf-8"))
    section = page[page.index("Waiting for a reference rate (policy)") :]
    assert '<span class="badge alert">2</span>' in section[:200]
    assert section.count("no reference rate for 2025-H2") == 2 and "Client B2B" in section
    run_days(None, db, ["2026-01-21"], policy=_policy(tmp_path))
    assert query(
        db, "select action_id, interest_amount from dunning_actions where as_of = '2026-01-21' order by 1"
    ) == [("B2B|EUR|1|formal_notice", D("17.28")), ("B2B|USD|1|formal_notice", D("17.26"))]


def test_a_policy_without_an_old_half_year_holds_only_the_old_debtor(tmp_path):
    """The default policy without 2019-H1. OLD owes 500.00 due 2019-03-01, NEW 800.00 due Fri
    2026-01-30; both climb from Tue 03-10 (due, call_1 03-13, reminder_2 03-16, call_2 03-19). On
    Mon 03-23 NEW gets its formal notice: 800.00 × 52 days (01-31..03-23) × 12.15 % / 365 =
    13.847… → 13.85; OLD's would need 2019-H1: it waits, with the half-year in unit_stage."""
    from pathlib import Path

    default = (Path(__file__).resolve().parent.parent / "policies" / "default.yaml").read_text(encoding="utf-8")
    line = '  - {half_year: 2019-H1, rate: "0.00"}\n'
    assert line in default
    pol = tmp_path / "no-2019-h1.yaml"
    pol.write_text(default.replace(line, ""), encoding="utf-8")
    src = write_source(
        tmp_path / "src",
        customers=[customer("OLD"), customer("NEW")],
        invoices=[invoice("I1", "OLD", "2019-03-01", "500.00"), invoice("I2", "NEW", "2026-01-30", "800.00")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19", "2026-03-23"], policy=str(pol))
    assert query(db, "select customer_id, interest_amount from dunning_actions where stage = 'formal_notice'") == [
        ("NEW", D("13.85"))
    ]
    u = unit(db, "2026-03-23", "OLD")
    assert (u["current_stage"], u["no_action_reason"]) == ("call_2", "missing_reference_rate")
    assert "2019-H1" in u["wait_detail"]


def test_the_suggested_key_of_a_missing_rate_matches_the_policys_pattern():
    """A year written with fewer than 4 digits is named as the policy writes it (0206-H1), and the
    suggested entry is a valid policy key."""
    from datetime import date

    import yaml

    from relance.core.policy import ReferenceRate, load_policy

    with pytest.raises(PolicyError) as err:
        load_policy(None).require_rates(date(206, 1, 2), date(206, 3, 1))
    assert "no rate for 0206-H1" in str(err.value)
    suggested = str(err.value).split("add `- ")[1].rstrip("`")
    entry = yaml.safe_load(suggested.replace("…", "1.00"))
    assert ReferenceRate.model_validate(entry).half_year == "0206-H1"


def test_late_days_starting_on_1_january_need_no_earlier_rate(tmp_path):
    """Due 2025-12-31: the first late day is 2026-01-01, so 2025-H2 is not needed. Due step on
    Mon 02-02, formal notice Tue 02-03 (+34): 1000.00 × 34 days × 10 % / 365 = 9.315… → 9.32."""
    pol = _policy(tmp_path, '  - {half_year: 2026-H1, rate: "0.00"}\n')
    src = write_source(
        tmp_path / "src", customers=[customer("B2B")], invoices=[invoice("I1", "B2B", "2025-12-31", "1000.00")]
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2026-02-02", "2026-02-03"], policy=pol)
    assert query(db, "select interest_amount, charges_total from dunning_actions where stage = 'formal_notice'") == [
        (D("9.32"), D("49.32"))
    ]


# --- interest on what is owed each day (issue 16 §3): a partial payment lowers the base from its date ---

DAILY_RATES = """\
  - {half_year: 2025-H1, rate: "3.15"}
  - {half_year: 2025-H2, rate: "2.15"}
  - {half_year: 2026-H1, rate: "1.00"}
"""


def _periods(db: str, invoice_id: str) -> list[tuple]:
    return query(
        db,
        f"""
        select period_start::varchar, period_end::varchar, days, half_year, annual_rate, open_amount, interest
        from action_charge_periods where invoice_id = '{invoice_id}' order by period_start""",
    )


def test_a_partial_payment_lowers_the_base_from_its_date(tmp_path):
    """The issue's case. 2025-H1 13.15 % (3.15 + 10), 2025-H2 12.15 %, 365-day year. P1 2500.00 due
    Tue 2025-06-10, 700.00 paid Fri 06-20; due step Wed 07-09, formal notice Thu 07-10 (30 late days):
      06-11..06-19   9 days × 2500.00 × 13.15 = 295 875
      06-20..06-30  11 days × 1800.00 × 13.15 = 260 370   (the payment's own day already at 1800)
      07-01..07-10  10 days × 1800.00 × 12.15 = 218 700
      774 945 / 36 500 = 21.2313… → 21.23 (the open amount at the notice, 1800.00 on every late
      day, gave 1800 × (20 × 13.15 + 10 × 12.15) / 36 500 = 18.96)."""
    src = write_source(
        tmp_path / "src",
        customers=[customer("PAR")],
        invoices=[invoice("P1", "PAR", "2025-06-10", "2500.00")],
        payments=[payment("Y1", "PAR", "2025-06-20", "700.00", invoice_id="P1")],
    )
    db = str(tmp_path / "r.duckdb")
    run_days(src, db, ["2025-07-09", "2025-07-10"], policy=_policy(tmp_path, DAILY_RATES))
    assert _periods(db, "P1") == [
        ("2025-06-11", "2025-06-19", 9, "2025-H1", D("13.1500"), D("2500.00"), D("8.1061643836")),
        ("2025-06-20", "2025-06-30", 11, "2025-H1", D("13.1500"), D("1800.00"), D("7.1334246575")),
        ("2025-07-01", "2025-07-10", 10, "2025-H2", D("12.1500"), D("1800.00"), D("5.9917808219")),
    ]
    assert query(
        db,
        """select open_amount, days_late, interest_amount, indemnity_amount from action_charges
                        where invoice_id = 'P1'""",
    ) == [(D("1800.00"), 30, D("21.23"), D("40.00"))]
    assert query(
        db, "select amount_due, interest_amount, charges_total from dunning_actions where stage = 'formal_notice'"
    ) == [(D("1800.00"), D("21.23"), D("61.23"))]


def test_payments_on_half_year_edges_and_before_the_due_date(tmp_path):
    """2026-H1 at 11.00 %. Runs Tue 2026-01-06, Wed 01-07, Mon 01-19.
    B: due step 01-06, formal notice 01-07. 3000.00 due 2025-05-31, 1000.00 paid on 06-30 (last day of H1), 500.00 on 07-01 (first of H2):
      06-01..06-29  29 days × 3000.00 × 13.15 = 1 144 050
      06-30..06-30   1 day  × 2000.00 × 13.15 =    26 300
      07-01..12-31 184 days × 1500.00 × 12.15 = 3 353 400   (payment and half-year cut the same day)
      01-01..01-07   7 days × 1500.00 × 11.00 =   115 500
      4 639 250 / 36 500 = 127.1027… → 127.10
    C: due step 01-06, formal notice 01-19 (the first run from +30). 1200.00 due 2025-12-15, 200.00
    paid 12-10 (before the due date: the base is 1000.00 from the first late day), 400.00 paid
    2026-01-01 (with the half-year), and 100.00 paid 01-25 (after the notice: not in it):
      12-16..12-31  16 days × 1000.00 × 12.15 = 194 400
      01-01..01-19  19 days ×  600.00 × 11.00 = 125 400
      319 800 / 36 500 = 8.7616… → 8.76 (not 600 × (16 × 12.15 + 19 × 11) / 36 500 = 6.63)"""
    src = write_source(
        tmp_path / "src",
        customers=[customer("B"), customer("C")],
        invoices=[invoice("B1", "B", "2025-05-31", "3000.00"), invoice("C1", "C", "2025-12-15", "1200.00")],
        payments=[
            payment("YB1", "B", "2025-06-30", "1000.00", invoice_id="B1"),
            payment("YB2", "B", "2025-07-01", "500.00", invoice_id="B1"),
            payment("YC1", "C", "2025-12-10", "200.00", invoice_id="C1"),
            payment("YC2", "C", "2026-01-01", "400.00", invoice_id="C1"),
            payment("YC3", "C", "2026-01-25", "100.00", invoice_id="C1"),
        ],
    )
    db = str(tmp_path / "r.duckdb")
    pol = _policy(tmp_path, DAILY_RATES)
    run_days(src, db, ["2026-01-06", "2026-01-07", "2026-01-19"], policy=pol)
    assert _periods(db, "B1") == [
        ("2025-06-01", "2025-06-29", 29, "2025-H1", D("13.1500"), D("3000.00"), D("31.3438356164")),
        ("2025-06-30", "2025-06-30", 1, "2025-H1", D("13.1500"), D("2000.00"), D("0.7205479452")),
        ("2025-07-01", "2025-12-31", 184, "2025-H2", D("12.1500"), D("1500.00"), D("91.8739726027")),
        ("2026-01-01", "2026-01-07", 7, "2026-H1", D("11.0000"), D("1500.00"), D("3.1643835616")),
    ]
    assert _periods(db, "C1") == [
        ("2025-12-16", "2025-12-31", 16, "2025-H2", D("12.1500"), D("1000.00"), D("5.3260273973")),
        ("2026-01-01", "2026-01-19", 19, "2026-H1", D("11.0000"), D("600.00"), D("3.4356164384")),
    ]
    assert query(
        db,
        """select invoice_id, open_amount, days_late, interest_amount from action_charges
                        order by invoice_id""",
    ) == [("B1", D("1500.00"), 221, D("127.10")), ("C1", D("600.00"), 35, D("8.76"))]


def test_a_warehouse_keyed_by_half_year_is_rekeyed_by_period_start(tmp_path):
    """action_charge_periods made before payments cut periods had the key (action, invoice,
    half_year): the next ingest rekeys it by period_start and keeps its rows."""
    import duckdb

    from tasks.ingest import ingest

    db = str(tmp_path / "old.duckdb")
    with duckdb.connect(db) as con:
        con.execute("""create table action_charge_periods (
            action_id varchar not null, invoice_id varchar not null, half_year varchar not null,
            period_start date not null, period_end date not null, days integer not null,
            reference_rate decimal(9,4) not null, annual_rate decimal(9,4) not null,
            open_amount decimal(18,2) not null, interest decimal(38,10) not null,
            primary key (action_id, invoice_id, half_year))""")
        con.execute("""insert into action_charge_periods values
            ('A|EUR|1|formal_notice', 'I1', '2025-H2', '2025-12-02', '2025-12-31', 30, 4, 14, 1000.00, 11.5068493151)""")
    ingest(_source(tmp_path), db, date(2026, 1, 19))
    assert query(
        db,
        """select constraint_column_names from duckdb_constraints()
                        where table_name = 'action_charge_periods' and constraint_type = 'PRIMARY KEY'""",
    ) == [(["action_id", "invoice_id", "period_start"],)]
    assert query(db, "select invoice_id, half_year, interest from action_charge_periods") == [
        ("I1", "2025-H2", D("11.5068493151"))
    ]
