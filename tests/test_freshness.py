"""The freshness guard (issue 15 §2): a run on a source that stopped updating plans no contact, sends
nothing, fails with one line and alerts; --allow-stale lets one run go on; the first run on a new
database is never blocked; a PostgreSQL source that lost rows is stale too."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from relance.core.policy import load_policy
from tasks.freshness import SourceStale, assess, business_days_after
from tests.test_operations import webhook  # noqa: F401  (the fixture)

POL = load_policy()


# -- business days and the verdict, by hand ---------------------------------------------------------


def test_business_days_after_skip_weekends_and_french_holidays():
    assert business_days_after(date(2026, 3, 9), date(2026, 3, 9), "FR") == 0
    assert business_days_after(date(2026, 3, 10), date(2026, 3, 9), "FR") == 0  # newer than as_of
    assert business_days_after(date(2026, 3, 6), date(2026, 3, 9), "FR") == 1  # Fri → Mon
    assert business_days_after(date(2026, 3, 2), date(2026, 3, 9), "FR") == 5  # Mon → next Mon
    # Thu 30 Apr → Mon 4 May 2026: Fri 1 May is the Fête du Travail, then a weekend: Mon only
    assert business_days_after(date(2026, 4, 30), date(2026, 5, 4), "FR") == 1
    # the same span in Great Britain: 1 May is a working day there (the bank holiday is Mon 4 May)
    assert business_days_after(date(2026, 4, 30), date(2026, 5, 4), "GB") == 1


def _fp(paid: str | None, issue: str | None, invoices: int = 100, payments: int = 80, customers: int = 20) -> dict:
    return {
        "customers": {"rows": customers},
        "invoices": {"rows": invoices, "max_issue_date": issue, "max_due_date": None},
        "payments": {"rows": payments, "max_paid_date": paid},
        "holds": {"rows": 0, "max_start_date": None, "max_end_date": None},
    }


def test_assess_gaps_against_the_policy_limits():
    as_of = date(2026, 3, 9)  # a Monday; default limits: payments 3, invoices 5 business days
    prev = _fp("2026-03-02", "2026-03-02")
    # newest payment Wed 4 Mar: Thu, Fri, Mon = 3 business days → not more than 3: fresh
    assert assess(as_of, _fp("2026-03-04", "2026-03-04"), prev, POL, "files")["verdict"] == "fresh"
    # newest payment Tue 3 Mar: Wed, Thu, Fri, Mon = 4 > 3 → stale; invoices of Mon 2 Mar: 5, not > 5
    got = assess(as_of, _fp("2026-03-03", "2026-03-02"), prev, POL, "files")
    assert got["verdict"] == "stale" and got["stale"]
    assert got["reasons"] == [
        "newest payment 2026-03-03 is 4 business days before 2026-03-09 > freshness.max_payment_gap_business_days 3"
    ]
    assert got["checks"]["payments"]["gap_business_days"] == 4 and got["checks"]["invoices"]["gap_business_days"] == 5
    # both frozen since the previous run, a week later
    got = assess(date(2026, 3, 11), prev, prev, POL, "files")
    assert len(got["reasons"]) == 2 and all("(unchanged since the previous run)" in r for r in got["reasons"])
    # a source with no payment at all has no payment date to judge (nothing to compare)
    assert assess(as_of, _fp(None, "2026-03-09"), prev, POL, "files")["verdict"] == "fresh"


def test_a_first_run_is_never_blocked_but_says_why_it_would_be():
    got = assess(date(2026, 3, 31), _fp("2026-01-02", "2026-01-02"), None, POL, "files")
    assert got["verdict"] == "first_run" and not got["stale"] and len(got["reasons"]) == 2


def test_row_drops_count_for_postgres_and_http_sources_only():
    as_of, prev = date(2026, 3, 3), _fp("2026-03-02", "2026-03-02", invoices=100, payments=80)
    now = _fp("2026-03-03", "2026-03-03", invoices=80, payments=40)  # invoices −20 % (not > 20), payments −50 %
    got = assess(as_of, now, prev, POL, "postgres")
    assert got["reasons"] == [
        "payments: 40 rows, 50.0% fewer than the previous run's 80 > freshness.max_row_drop_percent 20"
    ]
    assert got["checks"]["invoices"]["rows"] == {"previous": 100, "now": 80, "drop_percent": "20.0"}
    assert assess(as_of, now, prev, POL, "http")["stale"]
    assert not assess(as_of, now, prev, POL, "files")["stale"]


def test_null_turns_a_check_off(tmp_path):
    text = Path("policies/default.yaml").read_text(encoding="utf-8")
    text = text.replace("max_payment_gap_business_days: 3", "max_payment_gap_business_days: null")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    pol = load_policy(tmp_path / "p.yaml")
    assert pol.freshness.max_payment_gap_business_days is None
    assert not assess(date(2026, 3, 9), _fp("2026-01-02", "2026-03-09"), _fp("2026-01-02", "2026-03-02"), pol, "files")[
        "stale"
    ]


# -- the issue's repro: a frozen source, live runs -------------------------------------------------

D = date(2026, 3, 2)  # Monday: the sample data's date (payments up to D)
LATER = date(2026, 3, 9)  # Monday after: 5 business days later, the same files


def _counts(db: Path, outbox: Path) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        deliveries = con.execute("select count(*), count(*) filter (where status = 'sent') from deliveries").fetchone()
        actions_later = con.execute("select count(*) from dunning_actions where as_of = $d", {"d": LATER}).fetchone()[0]
    files = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file()) if outbox.exists() else []
    return {"deliveries": deliveries[0], "sent": deliveries[1], "actions_later": actions_later, "outbox_files": files}


def _run_row(db: Path, as_of: date) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("select * from runs where as_of = $d order by started_at desc limit 1", {"d": as_of})
        return dict(zip([c[0] for c in cur.description], cur.fetchone()))


@pytest.fixture(scope="module")
def frozen_source(tmp_path_factory):
    from relance.sample_data import generate

    out = tmp_path_factory.mktemp("frozen") / "src"
    generate(out, customers=40, seed=15, as_of=D)
    return out


def test_a_frozen_source_stops_the_flow_sends_nothing_and_alerts(
    prefect_server,
    webhook,  # noqa: F811 (the fixture imported from test_operations)
    frozen_source,
    tmp_path,
    monkeypatch,
):
    from flows.nightly import nightly_dunning

    url, received = webhook
    monkeypatch.setenv("RELANCE_ALERT_WEBHOOK", url)
    monkeypatch.delenv("RELANCE_ALERT_EMAIL", raising=False)
    db, outbox = tmp_path / "r.duckdb", tmp_path / "outbox"
    common = dict(source=str(frozen_source), db=str(db), outbox=str(outbox), auto_approve=True, return_state=True)

    first = nightly_dunning(as_of=D, **common)
    assert first.is_completed() and first.result()["freshness"]["verdict"] == "first_run"
    before = _counts(db, outbox)
    assert before["sent"] > 0 and before["outbox_files"]  # day D really dunned

    # five business days on, the source has not moved: newest payment ≤ D, 5 > 3 business days
    state = nightly_dunning(as_of=LATER, **common)
    assert state.is_failed()
    assert _counts(db, outbox) == before  # no action planned, no delivery, no file in the outbox
    row = _run_row(db, LATER)
    assert row["outcome"] == "failed" and row["freshness"] == "stale" and row["allow_stale"] is False
    assert row["reason"].startswith("the source looks stale (newest payment 2026-0")
    assert "\n" not in row["reason"] and "no contact planned, nothing sent" in row["reason"]
    assert "--allow-stale" in row["reason"]
    # the alert fired, with the reason
    assert len(received) == 1
    alert = received[0]["json"]
    assert alert["state"] == "Failed" and alert["as_of"] == LATER.isoformat() and "looks stale" in alert["message"]
    # the run still loaded and aged; the report shows the red banner
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from invoice_snapshot where as_of = $d", {"d": LATER}).fetchone()[0] > 0
        verdict = con.execute(
            "select verdict, stale, allow_stale, reasons from source_freshness where as_of = $d", {"d": LATER}
        ).fetchone()
    assert verdict[:3] == ("stale", True, False) and "newest payment" in json.loads(verdict[3])[0]
    html = (tmp_path / "reports").glob(f"*{LATER.isoformat()}*.html")
    page = next(iter(html)).read_text(encoding="utf-8")
    assert 'class="stale"' in page and "newest payment" in page

    # --allow-stale (the flow parameter) for one run: it plans and sends, the audit row says so
    forced = nightly_dunning(as_of=LATER, allow_stale=True, **common)
    assert forced.is_completed()
    after = _counts(db, outbox)
    assert after["actions_later"] > 0 and after["sent"] > before["sent"]
    row = _run_row(db, LATER)
    assert row["outcome"] == "completed" and row["freshness"] == "stale_allowed" and row["allow_stale"] is True
    assert len(received) == 1  # no alert for a run that completed


def test_the_cli_refuses_a_stale_source_in_one_line_and_allow_stale_overrides(frozen_source, tmp_path):
    from typer.testing import CliRunner

    from flows.nightly import nightly_run
    from relance.cli import app

    db = tmp_path / "r.duckdb"
    nightly_run(as_of=D, source=str(frozen_source), db=str(db))
    with pytest.raises(SourceStale) as e:
        nightly_run(as_of=LATER, source=str(frozen_source), db=str(db))
    assert str(e.value).startswith("the source looks stale (")
    result = CliRunner().invoke(
        app, ["run", "--as-of", LATER.isoformat(), "--source", str(frozen_source), "--db", str(db), "--allow-stale"]
    )
    assert result.exit_code == 0, result.output
    assert "looks stale, --allow-stale: planned and sent anyway: newest payment" in result.output
    assert _run_row(db, LATER)["freshness"] == "stale_allowed"


def test_the_first_run_on_a_new_database_is_not_blocked(frozen_source, tmp_path):
    from flows.nightly import nightly_run

    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=LATER, source=str(frozen_source), db=str(db))  # stale-looking, but the first
    assert summary["freshness"]["verdict"] == "first_run" and summary["freshness"]["reasons"]
    assert summary["escalate"]["actions"] > 0
    assert _run_row(db, LATER)["outcome"] == "completed"


def test_replays_are_not_guarded(frozen_source, tmp_path):
    """A backfill replays the past on purpose: never refused as stale, and it is a previous run."""
    from flows.backfill import backfill_run
    from flows.nightly import nightly_run

    db = tmp_path / "r.duckdb"
    backfill_run(start=D, end=D, source=str(frozen_source), db=str(db))
    with pytest.raises(SourceStale):
        nightly_run(as_of=LATER, source=str(frozen_source), db=str(db))


# -- a PostgreSQL source that lost rows ------------------------------------------------------------


@pytest.mark.postgres
def test_a_postgres_source_that_lost_60_percent_of_its_invoices_is_stale(tmp_path):
    from flows.nightly import nightly_run
    from tests.test_source_postgres import DDL, PG_URL, ErpSchema, _connect

    try:
        conn = _connect()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PostgreSQL unreachable: {e}")
    import uuid

    name = f"fresh_{uuid.uuid4().hex[:10]}"
    conn.execute(f"create schema {name}")
    try:
        erp = ErpSchema(conn, name)
        erp.create(*DDL)
        day = date(2026, 3, 3)
        erp.insert(
            "customers",
            [
                (
                    f"C{i}",
                    f"Client {i}",
                    f"c{i}@example.com",
                    None,
                    "1 rue de la Paix",
                    "75002",
                    "Paris",
                    "FR",
                    "fr",
                    "b2b",
                    False,
                    None,
                )
                for i in range(10)
            ],
        )
        erp.insert(
            "invoices",
            [
                (f"INV-{i}", f"C{i}", "invoice", date(2026, 3, 2), date(2026, 4, 1), Decimal("100.00"), "EUR")
                for i in range(10)
            ],
        )
        erp.insert(
            "payments", [(f"P-{i}", f"C{i}", f"INV-{i}", date(2026, 3, 2), Decimal("10.00"), "EUR") for i in range(10)]
        )
        db = tmp_path / "r.duckdb"
        assert (
            nightly_run(as_of=day, source=PG_URL, source_schema=name, db=str(db))["freshness"]["verdict"] == "first_run"
        )
        # the next day, with today's payment: fresh
        erp.insert("payments", [("P-10", "C0", "INV-0", date(2026, 3, 4), Decimal("10.00"), "EUR")])
        assert (
            nightly_run(as_of=date(2026, 3, 4), source=PG_URL, source_schema=name, db=str(db))["freshness"]["verdict"]
            == "fresh"
        )
        # an ERP export that lost 6 invoices of 10: stale
        conn.execute(
            f"delete from {name}.invoices where invoice_id in ('INV-4','INV-5','INV-6','INV-7','INV-8','INV-9')"
        )
        with pytest.raises(SourceStale, match=r"invoices: 4 rows, 60.0% fewer than the previous run's 10"):
            nightly_run(as_of=date(2026, 3, 5), source=PG_URL, source_schema=name, db=str(db))
        row = _run_row(db, date(2026, 3, 5))
        assert row["outcome"] == "failed" and row["freshness"] == "stale"
    finally:
        conn.execute(f"drop schema if exists {name} cascade")
        conn.close()


def test_a_source_already_behind_at_the_previous_run_lags_and_is_not_blocked():
    """The guard stops a source that stopped updating: current at the previous completed run, behind
    now. One that was already behind then (a fixed extract, a weekly export) is reported, not blocked."""
    # previous run Mon 2 Mar saw payments of Fri 27 Feb (1 business day: current); now Mon 9 Mar,
    # nothing newer: 6 business days > 3 → stale
    prev = _fp("2026-02-27", "2026-02-27")
    got = assess(date(2026, 3, 9), prev, prev, POL, "files", date(2026, 3, 2))
    assert got["stale"] and got["checks"]["payments"]["previous_gap_business_days"] == 1
    # previous run Mon 2 Mar already saw payments of Mon 16 Feb (10 business days behind): lagging
    old = _fp("2026-02-16", "2026-02-27")
    got = assess(date(2026, 3, 9), old, old, POL, "files", date(2026, 3, 2))
    assert got["verdict"] == "stale" and got["reasons"] == [
        "newest invoice 2026-02-27 is 6 business days before 2026-03-09 (unchanged since the previous run) "
        "> freshness.max_invoice_gap_business_days 5"
    ]
    assert got["lagging"] == [
        "newest payment 2026-02-16 is 15 business days before 2026-03-09 (already 10 at the "
        "previous run of 2026-03-02) > freshness.max_payment_gap_business_days 3"
    ]
    both_old = _fp("2026-02-16", "2026-02-16")
    got = assess(date(2026, 3, 9), both_old, both_old, POL, "files", date(2026, 3, 2))
    assert got["verdict"] == "fresh" and not got["stale"] and len(got["lagging"]) == 2
