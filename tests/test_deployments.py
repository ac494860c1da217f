"""Deployments from prefect.yaml on a real Prefect server, run by a real process worker."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from tests.prefect_server import BIN, REPO, prefect, prefect_server
from tests.test_aging import CUSTOMERS, HOLDS, INVOICES, PAYMENTS


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A Prefect server of its own (temporary PREFECT_HOME, embedded SQLite, loopback port)."""
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home, {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true"}) as (api, env):
        yield api, env


@pytest.fixture(scope="module")
def deployed(prefect_api):
    api, env = prefect_api
    prefect(env, "work-pool", "create", "relance", "--type", "process")
    prefect(env, "deploy", "--all", "--prefect-file", str(REPO / "prefect.yaml"))
    return api, env


def _deployment(api, name):
    r = requests.get(f"{api}/deployments/name/{name}", timeout=10)
    r.raise_for_status()
    return r.json()


def test_nightly_deployment_has_the_paris_schedule(deployed):
    api, env = deployed
    dep = _deployment(api, "nightly_dunning/nightly")
    schedules = [s["schedule"] for s in dep["schedules"]]
    assert {"cron": "0 2 * * *", "timezone": "Europe/Paris"}.items() <= schedules[0].items()
    assert dep["work_pool_name"] == "relance"
    assert dep["parameters"]["as_of"] is None
    params = set(dep["parameter_openapi_schema"]["properties"])
    assert {
        "as_of",
        "source",
        "db",
        "outbox",
        "send",
        "auto_approve",
        "policy",
        "source_schema",
        "approval_timeout_hours",
    } <= params
    # deploying again (make serve is re-runnable) keeps one schedule, not two
    prefect(env, "deploy", "--all", "--prefect-file", str(REPO / "prefect.yaml"))
    assert len(_deployment(api, "nightly_dunning/nightly")["schedules"]) == 1


def _last_sunday(year: int, month: int) -> date:
    """The last Sunday of a month with 31 days (March, October)."""
    last = date(year, month, 31)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def _paris_2am_in_utc(day: date) -> datetime | None:
    """02:00 in Paris on `day`, as a UTC instant, by the EU rule written out: summer time (UTC+2)
    from the last Sunday of March to the last Sunday of October, UTC+1 otherwise. On the last
    Sunday of October 02:00 happens twice; the first (summer time) is meant. On the last Sunday
    of March the clocks jump from 02:00 to 03:00: there is no 02:00, None."""
    spring, autumn = _last_sunday(day.year, 3), _last_sunday(day.year, 10)
    if day == spring:
        return None
    offset = 2 if spring < day <= autumn else 1
    return datetime(day.year, day.month, day.day, 2 - offset, tzinfo=UTC)


def test_paris_2am_by_hand():
    assert _last_sunday(2026, 3) == date(2026, 3, 29) and _last_sunday(2026, 10) == date(2026, 10, 25)
    assert _paris_2am_in_utc(date(2026, 12, 5)) == datetime(2026, 12, 5, 1, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 7, 14)) == datetime(2026, 7, 14, 0, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 3, 28)) == datetime(2026, 3, 28, 1, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 3, 30)) == datetime(2026, 3, 30, 0, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 10, 25)) == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 10, 26)) == datetime(2026, 10, 26, 1, tzinfo=UTC)
    assert _paris_2am_in_utc(date(2026, 3, 29)) is None


SERVICE_ERRORS = ("Traceback", "bulk DML", "InvalidRequestError")


def test_the_scheduler_creates_the_nightly_runs_at_2am_in_paris(deployed):
    """Issue 11 §1: after `prefect deploy --all`, the server's scheduler service (not `deployment
    run`) creates the next nightly runs, at 02:00 Europe/Paris, and its log shows no error."""
    api, env = deployed
    dep = _deployment(api, "nightly_dunning/nightly")
    log = Path(env["PREFECT_HOME"]) / "server.log"
    auto: list[dict] = []
    deadline = time.monotonic() + 60  # the recent-deployments loop runs every 5 s
    while time.monotonic() < deadline:
        auto = [r for r in _runs_of(api, dep["id"]) if r["auto_scheduled"] and r["state"]["type"] == "SCHEDULED"]
        if len(auto) >= 3:
            break
        time.sleep(1)
    text = log.read_text()
    assert len(auto) >= 3, f"no scheduled run after 60 s; server log:\n{text[-3000:]}"
    assert all(r["created_by"]["type"] == "SCHEDULE" and "auto-scheduled" in r["tags"] for r in auto)
    # the scheduler's defaults (min 3 runs, at least 1 h ahead): the next three 02:00 in Paris after
    # the runs were created
    created = min(datetime.fromisoformat(r["created"]) for r in auto)
    got = [datetime.fromisoformat(r["expected_start_time"]) for r in auto]
    day = created.date() - timedelta(days=1)
    expected: list[datetime] = []
    while len(expected) < 3:
        at = _paris_2am_in_utc(day)
        if at is None:  # the spring-forward Sunday: one run that night, between 00:00 and 01:00 UTC
            at = next(
                (g for g in got if g.date() == day and g <= datetime(day.year, day.month, day.day, 1, tzinfo=UTC)), None
            )
        if at is not None and at > created:
            expected.append(at)
        day += timedelta(days=1)
    assert got == expected
    assert not [line for line in text.splitlines() if any(e in line for e in SERVICE_ERRORS)], text[-3000:]


# What a failing scheduler loop leaves in the server log (Prefect 3.8.8 with SQLAlchemy 2.1.9).
BROKEN_SCHEDULER_LOG = """\
18:44:37.463 | ERROR   | docket.dependencies - \u21a9 [   570ms] schedule_recent_deployments(){schedule_recent_deployments}
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/sqlalchemy/ext/hybrid.py", line 1851, in prop
    raise exc.InvalidRequestError(
sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function
"""


def test_make_serve_checks_the_scheduler_and_the_server_log(deployed, tmp_path):
    """scripts/check_server.py, run by make serve after deploying: one line, exit 0 when the
    scheduler has created the next nightly run and the log is clean, exit 1 naming the error."""
    api, env = deployed
    log = Path(env["PREFECT_HOME"]) / "server.log"
    check = [str(BIN / "python"), str(REPO / "scripts" / "check_server.py"), api]
    ok = subprocess.run([*check, str(log)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    first = min(
        datetime.fromisoformat(r["expected_start_time"])
        for r in _runs_of(api, _deployment(api, "nightly_dunning/nightly")["id"])
        if r["auto_scheduled"]
    )
    paris_day = first.date()  # 02:00 in Paris is 00:00 or 01:00 UTC: the same date
    assert ok.stdout.splitlines() == [
        f"scheduler: ok \u2014 next nightly_dunning/nightly run {paris_day} 02:00 Europe/Paris "
        f"({first:%H:%M} UTC), no service error in the server log"
    ]
    broken = tmp_path / "server.log"
    broken.write_text(log.read_text() + BROKEN_SCHEDULER_LOG)
    bad = subprocess.run([*check, str(broken)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "relance: error: the Prefect server's services are failing: sqlalchemy.exc.InvalidRequestError: "
        f"Can't evaluate bulk DML statement; please supply a bulk_dml decorated function (see {broken})"
    ]


def test_triggered_nightly_run_is_executed_by_a_process_worker(deployed, source_writer, tmp_path):
    api, env = deployed
    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    db = tmp_path / "r.duckdb"
    out = prefect(
        env,
        "deployment",
        "run",
        "nightly_dunning/nightly",
        # no as_of: the run takes its scheduled date in Paris (00:30 UTC on 03-31 = 02:30 in Paris)
        "--start-at",
        "2026-03-31T00:30:00+00:00",
        "--param",
        f"source={src}",
        "--param",
        f"db={db}",
    ).stdout
    assert "Created flow run" in out
    # one polling pass of a real process worker picks the run up and executes it to the end; the
    # worker runs elsewhere and without RELANCE_REPO: the pull step goes to its installed checkout
    worker_env = {k: v for k, v in env.items() if k != "RELANCE_REPO"}
    prefect(
        worker_env, "worker", "start", "--pool", "relance", "--type", "process", "--run-once", timeout=600, cwd=tmp_path
    )
    dep = _deployment(api, "nightly_dunning/nightly")
    runs = requests.post(
        f"{api}/flow_runs/filter",
        json={
            "deployments": {"id": {"any_": [dep["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
        },
        timeout=10,
    ).json()
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"], runs
    assert runs[0]["name"] == "nightly-2026-03-31"
    with duckdb.connect(str(db), read_only=True) as con:
        assert (
            con.execute("select count(*) from invoice_snapshot where as_of = ?", [date(2026, 3, 31)]).fetchone()[0] == 4
        )


@pytest.mark.parametrize(
    "scheduled,expected",
    [
        ("2026-03-31T00:00:00+00:00", date(2026, 3, 31)),  # 02:00 in Paris (summer time)
        ("2026-01-15T01:00:00+00:00", date(2026, 1, 15)),  # 02:00 in Paris (winter time)
        ("2026-03-30T22:30:00+00:00", date(2026, 3, 31)),  # 00:30 on the 31st in Paris, still the 30th in UTC
    ],
)
def test_the_business_date_of_a_scheduled_time_is_its_date_in_paris(scheduled, expected):
    from datetime import datetime

    from relance.core.dates import scheduled_date

    assert scheduled_date(datetime.fromisoformat(scheduled)) == expected


def _runs_of(api, deployment_id):
    return requests.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
        timeout=10,
    ).json()


def test_backfill_deployment_twice_over_overlapping_ranges(deployed, source_writer, tmp_path):
    """backfill/backfill with parameters, run by the worker; a second, overlapping range adds no duplicate."""
    api, env = deployed
    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    db = tmp_path / "b.duckdb"
    dep = _deployment(api, "backfill/backfill")
    counts = []
    for start, end in (("2026-03-02", "2026-03-20"), ("2026-03-10", "2026-03-31")):
        prefect(
            env,
            "deployment",
            "run",
            "backfill/backfill",
            "--param",
            f"start={start}",
            "--param",
            f"end={end}",
            "--param",
            f"source={src}",
            "--param",
            f"db={db}",
        )
        prefect(env, "worker", "start", "--pool", "relance", "--type", "process", "--run-once", timeout=600)
        with duckdb.connect(str(db), read_only=True) as con:
            counts.append(
                con.execute(
                    "select count(*), count(distinct action_id), count(distinct (customer_id, stage, as_of)) "
                    "from dunning_actions"
                ).fetchone()
            )
    runs = _runs_of(api, dep["id"])
    assert [r["state"]["type"] for r in runs] == ["COMPLETED", "COMPLETED"], runs
    assert [r["name"] for r in runs] == ["backfill-2026-03-02-2026-03-20", "backfill-2026-03-10-2026-03-31"]
    (n1, d1, k1), (n2, d2, k2) = counts
    assert n1 == d1 == k1 and n2 == d2 == k2 and n2 >= n1 > 0  # one action per unit, stage and date: no duplicate
    with duckdb.connect(str(db), read_only=True) as con:
        assert (
            con.execute("select count(*), count(distinct (as_of)) from aged_balance").fetchone()[1] == 30
        )  # 03-02 … 03-31
    # the progress artifact of each run reached 100 %
    arts = requests.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"type": {"any_": ["progress"]}}, "flow_runs": {"id": {"any_": [r["id"] for r in runs]}}},
        timeout=10,
    ).json()
    assert len(arts) == 2 and all(a["data"] == 100.0 for a in arts), arts


def test_a_worker_whose_relance_repo_is_no_checkout_fails_with_one_line(deployed, tmp_path):
    """Issue 11 §2: RELANCE_REPO naming a directory that is no checkout: the run fails, and the
    worker's log says which variable to set (not only "Hook subprocess exited with status code 1")."""
    api, env = deployed
    out = prefect(
        env,
        "deployment",
        "run",
        "backfill/backfill",
        "--param",
        "start=2026-03-02",
        "--param",
        "end=2026-03-02",
        "--param",
        f"db={tmp_path / 'x.duckdb'}",
    ).stdout
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    try:
        worker = prefect(
            env | {"RELANCE_REPO": str(tmp_path)},
            "worker",
            "start",
            "--pool",
            "relance",
            "--type",
            "process",
            "--run-once",
            timeout=600,
            check=False,
        )
        run = requests.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        assert run["state"]["type"] in ("FAILED", "CRASHED"), run["state"]
        logs = requests.post(
            f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}, timeout=10
        ).json()
        said = worker.stdout + worker.stderr + "\n".join(entry["message"] for entry in logs)
        assert f"relance: error: RELANCE_REPO={tmp_path} is not a relance checkout" in said, said[-3000:]
    finally:
        requests.delete(f"{api}/flow_runs/{run_id}", timeout=10)


def test_the_checkout_is_relance_repo_else_the_installed_one(tmp_path):
    from relance.core.checkout import CheckoutError, checkout_directory
    from relance.core.paths import ROOT

    assert checkout_directory({}) == ROOT == REPO
    assert checkout_directory({"RELANCE_REPO": str(REPO)}) == REPO
    with pytest.raises(CheckoutError, match=r"^relance: error: RELANCE_REPO=.* is not a relance checkout"):
        checkout_directory({"RELANCE_REPO": str(tmp_path)})


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() != "true",
    reason="chromium is not installed (required when CI=true)",
)
def test_the_ui_deployment_page_shows_the_nightly_schedule(deployed, tmp_path):
    """The Prefect UI (served by the same server) renders the nightly deployment and its schedule."""
    api, _ = deployed
    dep = _deployment(api, "nightly_dunning/nightly")
    ui = api.removesuffix("/api")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{ui}/deployments/deployment/{dep['id']}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = proc.stdout
    (tmp_path / "deployment.html").write_text(dom)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import re

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    assert "Deployment: nightly" in text and "nightly_dunning" in text, text[-3000:]
    # the UI writes the cron 0 2 * * * (Europe/Paris) as the sentence below (no slug: a slug would hide it)
    assert re.search(r"Schedules At 02:00 AM every day", text), text[-3000:]
    assert "Work Pool relance" in text and "Concurrency Limit 1" in text
