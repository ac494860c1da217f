"""The policy file: the shipped default is the contract's ladder; a policy that does not validate
is refused with a message naming the key and the problem, before anything runs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from relance.core.errors import PolicyError
from relance.core.policy import load_policy

DEFAULT = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_default_policy_is_the_contracts_ladder():
    pol = load_policy(None)
    assert [(s.code, s.offset_days, s.channels, s.min_amount, s.requires_approval) for s in pol.stages] == [
        ("preventive", -5, ("email",), D("0.00"), False),
        ("due", 0, ("email",), D("0.00"), False),
        ("call_1", 8, ("phone",), D("0.00"), False),
        ("reminder_2", 20, ("email", "sms", "letter"), D("0.00"), False),
        ("call_2", 25, ("phone",), D("0.00"), False),
        ("formal_notice", 30, ("registered_letter", "email"), D("100.00"), True),  # tolerance: costly stages
        ("amicable", 45, ("visit",), D("250.00"), False),
        ("litigation", 60, ("handoff",), D("500.00"), False),
    ]
    assert (pol.min_gap_days, pol.business_days_only) == (3, True)
    assert pol.tolerance.default == D("5.00")  # contract §3: no contact below 5.00 by default
    assert pol.tolerance.by_currency == {"EUR": D("5.00"), "GBP": D("5.00"), "USD": D("5.00")}
    c = pol.late_payment_charges
    assert (c.applies_to_segments, c.margin_points, c.indemnity_per_invoice, c.indemnity_currency, c.days_in_year) == (
        ("b2b",),
        D("10.00"),
        D("40.00"),
        "EUR",
        365,
    )
    assert pol.rate_for(date(2025, 3, 1)) == D("3.15")


def test_unknown_channel_is_refused(tmp_path):
    path = _variant(tmp_path, "channels: [phone]", "channels: [fax]")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    msg = str(err.value)
    assert "stages[2].channels[0]: Input should be 'email', 'sms', 'letter', 'registered_letter'" in msg


def test_offsets_must_increase(tmp_path):
    path = _variant(tmp_path, "offset_days: 25", "offset_days: 20")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "stages[4].offset_days" in str(err.value) and "increase" in str(err.value)


def test_duplicate_stage_code_is_refused(tmp_path):
    path = _variant(tmp_path, "code: call_2", "code: call_1")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "stages[4].code" in str(err.value) and "duplicate" in str(err.value) and "call_1" in str(err.value)


def test_missing_half_year_rate_is_refused_when_needed(tmp_path):
    path = _variant(tmp_path, '  - {half_year: 2025-H2, rate: "2.15"}\n', "")
    pol = load_policy(path)  # the file itself is valid
    pol.require_rates(date(2026, 1, 1), date(2026, 6, 30))  # 2025-H2 not needed
    with pytest.raises(PolicyError) as err:
        pol.require_rates(date(2025, 5, 1), date(2026, 2, 1))
    assert "reference_rates" in str(err.value) and "2025-H2" in str(err.value)


def test_a_broken_policy_stops_the_nightly_run_and_the_backfill_before_anything_is_written(tmp_path):
    from flows.backfill import backfill_run
    from flows.nightly import nightly_run
    from tests.ladder_helpers import customer, invoice, write_source

    path = _variant(tmp_path, "channels: [visit]", "channels: [pigeon]")
    src = write_source(tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-03-02")])
    db = tmp_path / "r.duckdb"
    with pytest.raises(PolicyError, match=r"stages\[6\]\.channels\[0\]"):
        nightly_run(as_of=date(2026, 3, 2), source=src, db=str(db), policy=str(path))
    with pytest.raises(PolicyError, match=r"stages\[6\]\.channels\[0\]"):
        backfill_run("2026-03-01", "2026-03-02", src, str(db), policy=str(path))
    assert not db.exists()


# -- issue 11 §7: values that make no sense are refused, naming the key --------------------------


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        # the interest's year: division by zero in SQL with 0; only 360, 365 or 366 days exist
        ("days_in_year: 365", "days_in_year: 0", "late_payment_charges.days_in_year", "360, 365 or 366"),
        ("days_in_year: 365", "days_in_year: -365", "late_payment_charges.days_in_year", "360, 365 or 366"),
        # a letter claiming −40.00 or a negative interest margin
        (
            'indemnity_per_invoice: "40.00"',
            'indemnity_per_invoice: "-40.00"',
            "late_payment_charges.indemnity_per_invoice",
            "greater than or equal to 0",
        ),
        (
            'margin_points: "10.00"',
            'margin_points: "-1.00"',
            "late_payment_charges.margin_points",
            "greater than or equal to 0",
        ),
        # a margin of 1e30 (overflowed DECIMAL(18,2): a traceback) — at most 100 points
        (
            'margin_points: "10.00"',
            "margin_points: 1e30",
            "late_payment_charges.margin_points",
            "less than or equal to 100",
        ),
        ('margin_points: "10.00"', "margin_points: .nan", "late_payment_charges.margin_points", "finite"),
        (
            'indemnity_per_invoice: "40.00"',
            'indemnity_per_invoice: "1e30"',
            "late_payment_charges.indemnity_per_invoice",
            "less than or equal to 1000000000",
        ),
        ('min_amount: "500.00"', 'min_amount: "1e30"', "stages[7].min_amount", "less than or equal to 1000000000"),
        # offsets and bucket bounds of ±99,999,999,999: at most ten years (3650 days) either side
        ("offset_days: 60", "offset_days: 99999999999", "stages[7].offset_days", "less than or equal to 3650"),
        ("offset_days: -5", "offset_days: -99999999999", "stages[0].offset_days", "greater than or equal to -3650"),
        (
            '{name: "91-180", max_days: 180}',
            '{name: "91-180", max_days: 99999999999}',
            "aging_buckets[4].max_days",
            "less than or equal to 3650",
        ),
        (
            "{name: not_due, max_days: 0}",
            "{name: not_due, max_days: -99999999999}",
            "aging_buckets[0].max_days",
            "greater than or equal to -3650",
        ),
        ("min_gap_days: 3", "min_gap_days: 99999999999", "min_gap_days", "less than or equal to 3650"),
        (
            '{half_year: 2025-H2, rate: "2.15"}',
            '{half_year: 2025-H2, rate: "1e30"}',
            "reference_rates[13].rate",
            "less than or equal to 100",
        ),
        # not a currency
        (
            "indemnity_currency: EUR",
            "indemnity_currency: ZZZ",
            "late_payment_charges.indemnity_currency",
            "'ZZZ' is not an ISO 4217 currency code",
        ),
        (
            "indemnity_currency: EUR",
            "indemnity_currency: eur",
            "late_payment_charges.indemnity_currency",
            "'eur' is not an ISO 4217 currency code",
        ),
    ],
)
def test_values_out_of_range_are_refused_naming_the_key(tmp_path, old, new, key, words):
    path = _variant(tmp_path, old, new)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    lines = [ln.strip() for ln in str(err.value).splitlines()[1:]]
    assert any(ln.startswith(f"{key}: ") and words in ln for ln in lines), str(err.value)


@pytest.mark.parametrize(
    "old, new",
    [
        ("days_in_year: 365", "days_in_year: 360"),
        ("days_in_year: 365", 'days_in_year: "366"'),
        ("days_in_year: 365", "days_in_year: 366"),
        ('margin_points: "10.00"', 'margin_points: "0"'),
        ('indemnity_per_invoice: "40.00"', 'indemnity_per_invoice: "0.00"'),
        ("indemnity_currency: EUR", "indemnity_currency: CHF"),
        ("offset_days: 60", "offset_days: 3650"),
    ],
)
def test_values_at_the_edges_of_the_ranges_are_accepted(tmp_path, old, new):
    load_policy(_variant(tmp_path, old, new))


def test_the_cli_refuses_a_zero_day_year_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.ladder_helpers import customer, invoice, write_source

    path = _variant(tmp_path, "days_in_year: 365", "days_in_year: 0")
    src = write_source(tmp_path / "src", customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-03-02")])
    db = tmp_path / "r.duckdb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "relance.cli",
            "run",
            "--as-of",
            "2026-04-15",
            "--source",
            str(src),
            "--db",
            str(db),
            "--policy",
            str(path),
        ],
        cwd=DEFAULT.parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"relance: error: policy {path} is not valid:")
    assert "late_payment_charges.days_in_year" in done.stderr and "Traceback" not in done.stderr
    assert not db.exists()


def test_a_tolerance_names_a_currency_code(tmp_path):
    path = _variant(tmp_path, '    GBP: "5.00"', '    euro: "5.00"')
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "tolerance.by_currency: 'euro' is not a currency code like EUR" in str(err.value)


def test_a_policy_written_before_the_stage_keys_keeps_its_charges_gate_and_formal_letter(tmp_path):
    """A custom ladder naming the contract's codes without the stage keys means what it meant:
    the formal notice is charged, formal, attached and the legal gate; litigation is charged; the
    preventive email stops on an opt-out. A key written in the file wins."""
    import re

    text = Path("policies/default.yaml").read_text(encoding="utf-8")
    keys = r"charged|formal|attach_letter|legal_notice|stopped_by_opt_out|reference_prefix"
    legacy = re.sub(rf"(?m)^\s+(?:{keys}):.*\n", "", text)
    assert not re.search(r"(?m)^\s+legal_notice:", legacy)
    path = tmp_path / "legacy.yaml"
    path.write_text(legacy, encoding="utf-8")
    stages = {s.code: s for s in load_policy(path).stages}
    fn = stages["formal_notice"]
    assert (fn.charged, fn.formal, fn.attach_letter, fn.legal_notice, fn.reference_prefix) == (
        True,
        True,
        True,
        True,
        "MD",
    )
    assert (stages["litigation"].charged, stages["litigation"].reference_prefix) == (True, "CT")
    assert stages["preventive"].stopped_by_opt_out and not stages["call_1"].charged
    path.write_text(
        legacy.replace("  - code: formal_notice\n", "  - code: formal_notice\n    charged: false\n"), encoding="utf-8"
    )
    assert not {s.code: s for s in load_policy(path).stages}["formal_notice"].charged


def test_the_policy_and_the_channels_settings_are_refused_alike(tmp_path):
    """One loader (relance.core.yaml_models) for both hand-written files: the same kinds of message,
    keys named as written (email.max_attempts, stages[0].code)."""
    from relance.core.errors import UserError
    from tasks.dispatch.config import DEFAULT_CHANNELS_CONFIG, load_channels_config

    channels = tmp_path / "channels.yaml"
    channels.write_text(
        DEFAULT_CHANNELS_CONFIG.read_text(encoding="utf-8").replace("\nemail:\n", "\nemail:\n  max_attempt: 3\n", 1),
        encoding="utf-8",
    )
    with pytest.raises(UserError) as err:
        load_channels_config(channels)
    assert str(err.value).startswith(f"channels settings {channels} are not valid:\n  email.max_attempt: Extra inputs")
    for path, load, name in (
        (tmp_path / "p.yaml", load_policy, "policy"),
        (tmp_path / "c.yaml", load_channels_config, "channels settings"),
    ):
        path.write_text("- a list\n", encoding="utf-8")
        with pytest.raises(UserError, match=rf"^{name} {path} must be a mapping of keys \("):
            load(path)
        path.write_bytes(b"stages: \xff\xfe\n")
        with pytest.raises(UserError, match=rf"^{name} {path} (is|are) not readable YAML: "):
            load(path)
        path.write_text("a: [\n", encoding="utf-8")
        with pytest.raises(UserError, match=rf"^{name} {path} (is|are) not readable YAML: "):
            load(path)
    with pytest.raises(UserError, match=r"^channels settings .*nope.yaml do not exist$"):
        load_channels_config(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match=r"^policy file .*nope.yaml does not exist$"):
        load_policy(tmp_path / "nope.yaml")


def test_a_channels_file_of_before_the_stage_keys_is_read_or_told_where_the_attachment_went(tmp_path):
    """`email.attach_letter_for_stages` moved to the policy's `attach_letter`: its old default is
    read (the policy says the same), another list is one line saying where to set it now."""
    from relance.core.errors import UserError
    from tasks.dispatch.config import DEFAULT_CHANNELS_CONFIG, load_channels_config

    text = Path(DEFAULT_CHANNELS_CONFIG).read_text(encoding="utf-8")
    assert "\nemail:\n" in text
    old = tmp_path / "old.yaml"
    old.write_text(
        text.replace("\nemail:\n", "\nemail:\n  attach_letter_for_stages: [formal_notice]\n"), encoding="utf-8"
    )
    assert load_channels_config(old).email.from_email
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("\nemail:\n", "\nemail:\n  attach_letter_for_stages: [call_1]\n"), encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_channels_config(other)
    assert "set `attach_letter: true`" in str(err.value)
