"""`relance sample-data`: a realistic, deterministic synthetic source that the pipeline loads
with zero rejected rows (contract §1)."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from relance.sample_data import generate, window_start

AS_OF = date(2026, 3, 31)
SEED = 7
ENTITIES = ("customers", "invoices", "payments", "holds")
CONTRACT_COLUMNS = {
    "customers": [
        "customer_id",
        "name",
        "email",
        "phone",
        "street",
        "postal_code",
        "city",
        "country",
        "language",
        "segment",
        "dunning_block",
        "collector",
        "tags",
    ],
    "invoices": ["invoice_id", "customer_id", "kind", "issue_date", "due_date", "amount", "currency"],
    "payments": ["payment_id", "customer_id", "invoice_id", "paid_date", "amount", "currency"],
    "holds": ["hold_id", "customer_id", "invoice_id", "kind", "start_date", "end_date"],
}
AMOUNT = re.compile(r"^\d+\.\d{2}$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RESERVED_MAIL_DOMAIN = re.compile(r"@([a-z0-9-]+\.example|example\.(com|net|org))$")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """2,000 customers (about 20,000 invoices), CSV, read back with Python's csv module."""
    out = tmp_path_factory.mktemp("sample") / "src"
    counts = generate(out, customers=2000, seed=SEED, as_of=AS_OF)
    data = {}
    for entity in ENTITIES:
        header, rows = read_csv(out / f"{entity}.csv")
        data[entity] = {"header": header, "rows": rows}
    return out, counts, data


def test_same_arguments_same_bytes_and_another_seed_other_data(tmp_path):
    a = generate(tmp_path / "a", customers=300, seed=1, as_of=AS_OF)
    b = generate(tmp_path / "b", customers=300, seed=1, as_of=AS_OF)
    c = generate(tmp_path / "c", customers=300, seed=2, as_of=AS_OF)
    assert a == b
    for entity in ENTITIES:
        assert (tmp_path / "a" / f"{entity}.csv").read_bytes() == (tmp_path / "b" / f"{entity}.csv").read_bytes()
    assert (tmp_path / "a" / "invoices.csv").read_bytes() != (tmp_path / "c" / "invoices.csv").read_bytes()
    assert (tmp_path / "a" / "customers.csv").read_bytes() != (tmp_path / "c" / "customers.csv").read_bytes()
    assert c["customers"] == 300


def test_parquet_is_deterministic_too(tmp_path):
    generate(tmp_path / "a", customers=200, seed=5, as_of=AS_OF, fmt="parquet")
    generate(tmp_path / "b", customers=200, seed=5, as_of=AS_OF, fmt="parquet")
    for entity in ENTITIES:
        assert (tmp_path / "a" / f"{entity}.parquet").read_bytes() == (
            tmp_path / "b" / f"{entity}.parquet"
        ).read_bytes()


def test_headers_are_exactly_the_contract_columns(source):
    out, counts, data = source
    for entity in ENTITIES:
        assert data[entity]["header"] == CONTRACT_COLUMNS[entity]
        assert len(data[entity]["rows"]) == counts[entity]
        first_line = (out / f"{entity}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert first_line == ",".join(CONTRACT_COLUMNS[entity])


def test_every_row_has_all_fields_and_commas_are_quoted(source):
    out, _, data = source
    for entity in ENTITIES:
        for row in data[entity]["rows"]:
            assert None not in row and all(v is not None for v in row.values()), row
    names = [r["name"] for r in data["customers"]["rows"]]
    assert any("," in n for n in names), "expected some names with a comma (quoting)"
    assert any("," in r["street"] for r in data["customers"]["rows"])
    text = (out / "customers.csv").read_text(encoding="utf-8")
    with_comma = next(n for n in names if "," in n)
    assert f'"{with_comma}"' in text


def test_customers_look_like_the_intended_portfolio(source):
    _, _, data = source
    rows = data["customers"]["rows"]
    n = len(rows)
    assert n == 2000
    assert len({r["customer_id"] for r in rows}) == n
    countries = Counter(r["country"] for r in rows)
    assert set(countries) == {"FR", "BE", "DE", "GB"}
    assert countries.most_common(1)[0][0] == "FR"
    assert 0.65 < countries["FR"] / n < 0.85
    assert {r["language"] for r in rows} == {"fr", "en"}
    assert all(r["language"] == "en" for r in rows if r["country"] in ("DE", "GB"))
    assert all(r["language"] == "fr" for r in rows if r["country"] == "FR")
    segments = Counter(r["segment"] for r in rows)
    assert set(segments) == {"b2b", "b2c", "public"} and segments["b2b"] > segments["b2c"] > segments["public"]
    # key accounts (tag key_account) among the companies, for the key-account ladder (issue 16)
    keys = [r for r in rows if r["tags"] == "key_account"]
    assert keys and all(r["segment"] == "b2b" for r in keys)
    assert all(r["name"].strip() for r in rows)

    no_email = [r for r in rows if not r["email"]]
    no_phone = [r for r in rows if not r["phone"]]
    no_address = [r for r in rows if not r["street"]]
    unreachable = [r for r in rows if not r["email"] and not r["phone"] and not r["street"]]
    assert 0.05 < len(no_email) / n < 0.16
    assert 0.14 < len(no_phone) / n < 0.27
    assert 0.01 < len(no_address) / n < 0.06
    assert unreachable, "some customers can be reached by no channel (undeliverable)"
    for r in no_address:
        assert not r["postal_code"] and not r["city"]
    for r in rows:
        if r["street"]:
            assert r["postal_code"] and r["city"]

    for r in rows:
        if r["phone"]:
            assert E164.match(r["phone"]), r["phone"]
            assert r["phone"].startswith({"FR": "+33", "BE": "+32", "DE": "+49", "GB": "+44"}[r["country"]])
        if r["email"]:
            assert RESERVED_MAIL_DOMAIN.search(r["email"]), r["email"]
        if r["country"] == "FR" and r["postal_code"]:
            assert re.fullmatch(r"\d{5}", r["postal_code"])
    assert {r["dunning_block"] for r in rows} == {"true", "false"}
    blocked = sum(r["dunning_block"] == "true" for r in rows)
    assert 0.005 < blocked / n < 0.05
    collectors = [r["collector"] for r in rows if r["segment"] == "b2b"]
    assert sum(bool(c) for c in collectors) / len(collectors) > 0.8
    assert 2 <= len({c for c in collectors if c}) <= 12


def test_invoices_dates_terms_amounts_and_currencies(source):
    _, _, data = source
    rows = data["invoices"]["rows"]
    customers = {r["customer_id"]: r for r in data["customers"]["rows"]}
    assert 8 <= len(rows) / len(customers) <= 12, "about 10 invoices per customer"
    assert len({r["invoice_id"] for r in rows}) == len(rows)
    start = window_start(AS_OF)
    assert start == date(2024, 9, 30)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"invoice", "credit_note"}
    assert 0.015 < kinds["credit_note"] / len(rows) < 0.05
    issues = []
    for r in rows:
        assert r["customer_id"] in customers
        assert ISO_DATE.match(r["issue_date"]) and ISO_DATE.match(r["due_date"])
        issue, due = d(r["issue_date"]), d(r["due_date"])
        assert start < issue <= AS_OF
        assert AMOUNT.match(r["amount"]), r["amount"]
        assert int(r["amount"].replace(".", "")) > 0
        if r["kind"] == "invoice":
            assert (due - issue).days in (30, 45, 60)
        else:
            assert due == issue
        issues.append(issue)
    assert min(issues) < start + timedelta(days=15) and max(issues) > AS_OF - timedelta(days=5)
    assert {(d(r["due_date"]) - d(r["issue_date"])).days for r in rows if r["kind"] == "invoice"} == {30, 45, 60}

    # Credit notes are smaller than invoices; b2c invoices smaller than b2b ones.
    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    cents = lambda r: int(r["amount"].replace(".", ""))  # noqa: E731
    inv = [r for r in rows if r["kind"] == "invoice"]
    assert median(cents(r) for r in rows if r["kind"] == "credit_note") < median(cents(r) for r in inv)
    b2b = [cents(r) for r in inv if customers[r["customer_id"]]["segment"] == "b2b"]
    b2c = [cents(r) for r in inv if customers[r["customer_id"]]["segment"] == "b2c"]
    assert median(b2c) < median(b2b)
    assert max(b2b) > 10 * median(b2b), "a long tail of large invoices"

    currencies = Counter(r["currency"] for r in rows)
    assert currencies.most_common(1)[0][0] == "EUR" and "GBP" in currencies
    gb_currencies = Counter(r["currency"] for r in rows if customers[r["customer_id"]]["country"] == "GB")
    assert gb_currencies.most_common(1)[0][0] == "GBP"
    per_customer = defaultdict(set)
    for r in rows:
        per_customer[r["customer_id"]].add(r["currency"])
    assert any(len(c) > 1 for c in per_customer.values()), "a few customers bill in two currencies"


def test_payments_name_invoices_of_the_same_customer_and_currency(source):
    _, _, data = source
    invoices = {r["invoice_id"]: r for r in data["invoices"]["rows"]}
    customers = {r["customer_id"] for r in data["customers"]["rows"]}
    rows = data["payments"]["rows"]
    assert len({r["payment_id"] for r in rows}) == len(rows)
    on_account = [r for r in rows if not r["invoice_id"]]
    assert on_account, "some payments on account (no invoice_id)"
    paid = defaultdict(int)
    for r in rows:
        assert r["customer_id"] in customers
        assert AMOUNT.match(r["amount"]) and int(r["amount"].replace(".", "")) > 0
        assert d(r["paid_date"]) <= AS_OF
        if r["invoice_id"]:
            inv = invoices[r["invoice_id"]]
            assert inv["customer_id"] == r["customer_id"]
            assert inv["currency"] == r["currency"]
            assert inv["kind"] == "invoice"
            assert d(r["paid_date"]) >= d(inv["issue_date"])
            paid[r["invoice_id"]] += int(r["amount"].replace(".", ""))
    units = {(r["customer_id"], r["currency"]) for r in data["invoices"]["rows"]}
    assert all((r["customer_id"], r["currency"]) in units for r in on_account)

    # The behaviours show: on time, late, partial, overpaid, unpaid, not yet due.
    delays = []
    partial = over = 0
    for invoice_id, cents in paid.items():
        inv = invoices[invoice_id]
        amount = int(inv["amount"].replace(".", ""))
        partial += cents < amount
        over += cents > amount
    for r in rows:
        if r["invoice_id"]:
            delays.append((d(r["paid_date"]) - d(invoices[r["invoice_id"]]["due_date"])).days)
    assert sum(x <= 0 for x in delays) > 0.3 * len(delays)
    assert sum(5 <= x <= 90 for x in delays) > 0.15 * len(delays)
    assert max(delays) <= 200
    assert partial > 0 and over > 0
    unpaid_invoices = [i for i, r in invoices.items() if r["kind"] == "invoice" and i not in paid]
    assert unpaid_invoices
    recent = [r for r in invoices.values() if r["kind"] == "invoice" and d(r["due_date"]) > AS_OF]
    assert recent and sum(r["invoice_id"] not in paid for r in recent) > 0.7 * len(recent)


def test_holds_kinds_scopes_and_periods(source):
    _, _, data = source
    invoices = {r["invoice_id"]: r for r in data["invoices"]["rows"]}
    customers = {r["customer_id"] for r in data["customers"]["rows"]}
    rows = data["holds"]["rows"]
    assert len({r["hold_id"] for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    assert {"dispute", "promise", "payment_plan"} <= set(kinds)
    assert set(kinds) <= {"dispute", "promise", "payment_plan", "legal", "other"}
    held_customers = {r["customer_id"] for r in rows}
    assert 0.02 < len(held_customers) / len(customers) < 0.08
    for r in rows:
        assert r["customer_id"] in customers
        start = d(r["start_date"])
        if r["end_date"]:
            assert d(r["end_date"]) >= start
        if r["invoice_id"]:
            inv = invoices[r["invoice_id"]]
            assert inv["customer_id"] == r["customer_id"] and inv["kind"] == "invoice"
            assert start >= d(inv["issue_date"])
        if r["kind"] == "dispute":
            assert r["invoice_id"]
        if r["kind"] == "payment_plan":
            assert not r["invoice_id"]
    assert sum(d(r["start_date"]) <= AS_OF for r in rows) > 0.9 * len(rows)
    assert any(not r["end_date"] for r in rows), "some open-ended holds"
    assert any(r["end_date"] and d(r["end_date"]) < AS_OF for r in rows), "some ended holds"
    assert any(r["end_date"] and d(r["end_date"]) >= AS_OF >= d(r["start_date"]) for r in rows), "some active"
    promises = [r for r in rows if r["kind"] == "promise" and r["end_date"]]
    plans = [r for r in rows if r["kind"] == "payment_plan" and r["end_date"]]
    length = lambda r: (d(r["end_date"]) - d(r["start_date"])).days  # noqa: E731
    assert max(map(length, promises)) < min(map(length, plans))


def test_parquet_output_replaces_csv_and_reads_back_as_strings(tmp_path, source):
    _, counts, _ = source
    out = tmp_path / "src"
    generate(out, customers=2000, seed=SEED, as_of=AS_OF)  # csv first: parquet must replace it
    assert (out / "invoices.csv").exists()
    pq_counts = generate(out, customers=2000, seed=SEED, as_of=AS_OF, fmt="parquet")
    assert pq_counts == counts
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{e}.parquet" for e in ENTITIES)
    with duckdb.connect() as con:
        for entity in ENTITIES:
            path = str(out / f"{entity}.parquet")
            n = con.execute("select count(*) from read_parquet(?)", [path]).fetchone()[0]
            assert n == counts[entity]
            described = con.execute("describe select * from read_parquet(?)", [path]).fetchall()
            assert [r[0] for r in described] == CONTRACT_COLUMNS[entity]
            assert {r[1] for r in described} == {"VARCHAR"}
        bad = con.execute(
            "select count(*) from read_parquet(?) where not regexp_full_match(amount, '[0-9]+[.][0-9]{2}')",
            [str(out / "invoices.parquet")],
        ).fetchone()[0]
        assert bad == 0
    # and back to CSV: the parquet files go away
    generate(out, customers=50, seed=SEED, as_of=AS_OF)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{e}.csv" for e in ENTITIES)


def _run_pipeline(source_dir: Path, db: Path) -> tuple[dict, list, int]:
    from flows.nightly import nightly_run

    summary = nightly_run(as_of=AS_OF, source=str(source_dir), db=str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        rejected = con.execute(
            "select entity, row_number, reason, action from rejected_rows where as_of = ? limit 20", [AS_OF]
        ).fetchall()
        snapshot = con.execute("select count(*) from invoice_snapshot where as_of = ?", [AS_OF]).fetchone()[0]
    return summary, rejected, snapshot


def test_pipeline_loads_the_csv_sample_with_zero_rejected_rows(source, tmp_path):
    out, counts, _ = source
    summary, rejected, snapshot = _run_pipeline(out, tmp_path / "r.duckdb")
    assert rejected == []  # neither rejected rows nor dropped contact fields
    assert summary["ingest"]["rows_rejected"] == 0
    assert summary["ingest"]["rows_loaded"] == counts
    assert snapshot > 0
    by_currency = summary["age"]["by_currency"]
    assert "EUR" in by_currency and "GBP" in by_currency


def test_pipeline_loads_the_parquet_sample_with_zero_rejected_rows(tmp_path):
    out = tmp_path / "pq"
    counts = generate(out, customers=300, seed=11, as_of=AS_OF, fmt="parquet")
    summary, rejected, snapshot = _run_pipeline(out, tmp_path / "r.duckdb")
    assert rejected == []
    assert summary["ingest"]["rows_loaded"] == counts
    assert snapshot > 0


@pytest.mark.parametrize("n", [1, 3])
def test_tiny_portfolios_work(tmp_path, n):
    counts = generate(tmp_path / "t", customers=n, seed=3, as_of=date(2024, 2, 29))
    assert counts["customers"] == n
    for entity in ENTITIES:
        header, rows = read_csv(tmp_path / "t" / f"{entity}.csv")
        assert header == CONTRACT_COLUMNS[entity] and len(rows) == counts[entity]


def test_cli_writes_the_sample(tmp_path):
    from typer.testing import CliRunner

    from relance.cli import app

    result = CliRunner().invoke(
        app,
        [
            "sample-data",
            "--out",
            str(tmp_path / "cli"),
            "--customers",
            "40",
            "--seed",
            "9",
            "--as-of",
            "2026-03-31",
            "--format",
            "parquet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "40 customers" in result.output
    assert (tmp_path / "cli" / "invoices.parquet").exists()
