"""The fleet on Prefect (issue 17): a real Prefect server of its own, the deployments of prefect.yaml,
a process work pool with two real workers. The `fleet` deployment's run starts one
`nightly_dunning/shard` run per shard as its subflows, the workers run them, and the merged
ROOT/fleet.duckdb equals one database run on the same source and date. A worker killed in the
middle of a shard's emails: its runs report themselves crashed, the fleet run fails naming them;
run again, it completes, and no email reaches SendGrid twice (counted at the SendGrid-compatible
server on loopback)."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
import requests

from tests.fakes.scenario import channels_config
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.prefect_server import BIN, REPO, prefect, prefect_server
from tests.test_faults import email_source

AS_OF = date(2026, 3, 16)  # a Monday, no public holiday in France
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.timeout(300)


class Workers:
    """Process workers of the pool `relance`, each in a process group of its own (Prefect 3.8.8's
    process worker starts each flow run as its child, in a session of its own)."""

    def __init__(self, env: dict, home: Path) -> None:
        self.env, self.home, self.procs = env, home, {}

    def start(self, name: str) -> None:
        log = open(self.home / f"worker-{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "relance", "--type", "process", "--name", name],
            env=self.env,
            cwd=str(self.home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def owner_of(self, pid: int) -> str | None:
        """The worker that started process pid (its parent, or its parent's parent, …)."""
        pids = {p.pid: n for n, p in self.procs.items()}
        while pid > 1:
            if pid in pids:
                return pids[pid]
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                return None
        return None

    def log(self) -> str:
        return "".join(p.read_text() for p in self.home.glob("worker-*.log"))

    def stop(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def fleet_pool(tmp_path_factory):
    """Server, deployments (shard and fleet, from prefect.yaml), the pool and two workers; the
    workers send email to a SendGrid-compatible fake on loopback (only the fault test sends)."""
    home = tmp_path_factory.mktemp("prefect-fleet")
    fake = FakeSendGrid(api_key="SG.test-fleet.relance").start()
    cfg = channels_config(
        home,
        email={"concurrency": 2, "timeout_seconds": 5, "max_attempts": 3, "backoff_base_seconds": 0.01},
    )
    extra = {
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "RELANCE_SENDGRID_HOST": fake.url,
        "SENDGRID_API_KEY": fake.api_key,
        "RELANCE_CHANNELS_CONFIG": str(cfg),
        "RELANCE_APPROVAL_POLL_S": "1",
    }
    try:
        with prefect_server(home, extra, healthy_within_s=120) as (api, env):
            workers = Workers(env, home)
            try:
                prefect(env, "work-pool", "create", "relance", "--type", "process")
                names = [
                    "nightly_dunning/shard",
                    "nightly_fleet/fleet",
                    "backfill/shard",
                    "backfill_fleet/fleet-backfill",
                ]
                prefect(
                    env,
                    "deploy",
                    *[a for n in names for a in ("--name", n)],
                    "--prefect-file",
                    str(REPO / "prefect.yaml"),
                )
                workers.start("worker-a")
                workers.start("worker-b")
                yield api, env, workers, fake
            finally:
                workers.stop()
    finally:
        fake.stop()


def _request(method: str, url: str, body=None) -> requests.Response:
    """One API call; a 503 (the server's SQLite busy under load: "retry") is retried, as Prefect's
    own client does, and so is a read — never a write — that timed out (the server starved of CPU
    while the suite's other worker runs)."""
    for attempt in range(8):
        try:
            r = requests.request(method, url, json=body, timeout=30)
        except (requests.Timeout, requests.ConnectionError):
            if attempt == 7 or not (method == "GET" or url.endswith("/filter")):
                raise  # a write is not repeated blindly
            time.sleep(1 + attempt)
            continue
        if r.status_code != 503:
            break
        time.sleep(0.25 * (attempt + 1))
    r.raise_for_status()
    return r


def _get(api, path):
    return _request("GET", f"{api}{path}").json()


def _post(api, path, body):
    r = _request("POST", f"{api}{path}", body)
    return r.json() if r.content else None


def _wait_final(api, run_id, seconds=200) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = _get(api, f"/flow_runs/{run_id}")
        if run["state"]["type"] in FINAL:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not final after {seconds} s: {run['state']}")


def _children(api, run_id) -> list[dict]:
    return _post(api, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}})


def _rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


COMPARE = {
    "actions": "select action_id, as_of, customer_id, currency, stage, amount_due, invoice_ids, status, "
    "interest_amount, indemnity_amount, charges_total from dunning_actions order by action_id",
    "deliveries": "select delivery_id, action_id, channel, status from deliveries order by delivery_id",
    "aged_balance": f"select * from aged_balance where as_of = '{AS_OF}' order by all",
    "recovery_metrics": f"select * from recovery_metrics where as_of = '{AS_OF}' order by all",
    "invoice_snapshot": f"select * from invoice_snapshot where as_of = '{AS_OF}' order by all",
}


def _fleet_in_subprocess(env: dict, **params) -> subprocess.Popen:
    """The fleet flow run in a process of its own (not on a worker: the fault kills a worker),
    its shards deployment runs on the pool."""
    code = "import json, sys; from flows.fleet import nightly_fleet; nightly_fleet(**json.loads(sys.argv[1]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(params)],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _pid(run: dict) -> int:
    """The process of a flow run started by a process worker (`infrastructure_pid`, maybe host:pid)."""
    return int(str(run.get("infrastructure_pid") or "0").rsplit(":", 1)[-1])


def _fleet_run_id(api, after: str, root: Path) -> dict | None:
    """The latest fleet run on root started after `after`."""
    runs = _post(
        api,
        "/flow_runs/filter",
        {
            "flow_runs": {"name": {"any_": [f"fleet-{AS_OF}"]}, "start_time": {"after_": after}},
            "sort": "START_TIME_DESC",
        },
    )
    return next((r for r in runs if r["parameters"].get("root") == str(root)), None)


NOTICE_DAY = date(2026, 3, 23)
NOTICES = [f"C{i}|EUR|1|formal_notice" for i in (1, 3, 4)]  # C3 in shard 0, C1 and C4 in shard 1
BACKFILL = ("2026-03-09", "2026-03-13")


@pytest.fixture(scope="module")
def three_fleets(fleet_pool, tmp_path_factory):
    """Three fleets started at once on the pool (the two workers run them side by side, and beside
    the fault test, first in this file), each with its reference in one database (`reference(db)`,
    the code of the CLI, run by its test while the fleets run):
    - night: sample data (200 customers), the `fleet` deployment on 2 shards, auto_approve;
    - approval: three debtors whose formal notice comes on 03-23 (the nights before run in each
      shard and in the single database), the `fleet` deployment without auto_approve;
    - backfill: the `fleet-backfill` deployment over 03-09..03-13 on 2 shards."""
    from flows.backfill import backfill_run
    from flows.nightly import nightly_run
    from relance.sample_data import generate
    from tasks.fleet.shards import shard_db, shard_source
    from tasks.fleet.split import split_source
    from tests.ladder_helpers import customer, invoice, run_days, write_source

    api, env, workers, _ = fleet_pool
    tmp = tmp_path_factory.mktemp("fleets")
    fleet, backfill = (
        _get(api, f"/deployments/name/{n}") for n in ("nightly_fleet/fleet", "backfill_fleet/fleet-backfill")
    )
    out: dict[str, dict] = {}

    night_src = tmp / "night-src"
    generate(night_src, customers=200, seed=42, as_of=AS_OF)
    out["night"] = {"root": tmp / "night", "single": tmp / "night-single" / "relance.duckdb"}
    night_params = {"as_of": str(AS_OF), "source": str(night_src), "shards": 2, "root": str(out["night"]["root"])}

    approval_src = write_source(
        tmp / "approval-src",
        customers=[customer("C1"), customer("C3"), customer("C4")],
        invoices=[
            invoice("I1", "C1", "2026-01-30", "800.00"),
            invoice("I3", "C3", "2026-01-30", "450.00"),
            invoice("I4", "C4", "2026-01-30", "300.00"),
        ],
    )
    before = ["2026-03-10", "2026-03-13", "2026-03-16", "2026-03-19"]  # the nights before, in each shard
    out["approval"] = {"root": tmp / "approval", "single": tmp / "approval-single" / "relance.duckdb"}
    split_source(str(approval_src), out["approval"]["root"], 2)
    for k in range(2):
        run_days(str(shard_source(out["approval"]["root"], k)), str(shard_db(out["approval"]["root"], k)), before)
    approval_params = {"as_of": str(NOTICE_DAY), "source": str(approval_src), "shards": 2}

    backfill_src = write_source(
        tmp / "backfill-src",
        customers=[customer(f"C{i}") for i in range(1, 7)],
        invoices=[invoice(f"I{i}", f"C{i}", f"2026-03-{i + 1:02d}", f"{100 * i}.00") for i in range(1, 7)],
    )
    out["backfill"] = {"root": tmp / "backfill", "single": tmp / "backfill-single" / "relance.duckdb"}
    start, end = BACKFILL
    backfill_params = {"start": start, "end": end, "source": str(backfill_src), "shards": 2}

    for name, dep, params in (
        ("night", fleet, night_params | {"auto_approve": True}),
        ("approval", fleet, approval_params | {"root": str(out["approval"]["root"])}),
        ("backfill", backfill, backfill_params | {"root": str(out["backfill"]["root"])}),
    ):
        body = {"parameters": params, "idempotency_key": f"{tmp}/{name}"}  # a retried create makes one run
        out[name]["run"] = _post(api, f"/deployments/{dep['id']}/create_flow_run", body)

    out["night"]["reference"] = lambda db: nightly_run(
        as_of=AS_OF, source=str(night_src), db=str(db), auto_approve=True
    )
    out["approval"]["reference"] = lambda db: (
        run_days(str(approval_src), str(db), before),
        nightly_run(as_of=NOTICE_DAY, source=str(approval_src), db=str(db)),  # outside a flow run: nothing pauses
    )
    out["backfill"]["reference"] = lambda db: backfill_run(start, end, str(backfill_src), db=str(db))
    return out


def test_the_fleet_deployment_runs_its_shards_as_subflows_on_the_workers_and_merges_to_one_database(
    fleet_pool, three_fleets
):
    api, env, workers, _ = fleet_pool
    root, single, run = (three_fleets["night"][k] for k in ("root", "single", "run"))
    three_fleets["night"]["reference"](single)
    dep = _get(api, "/deployments/name/nightly_fleet/fleet")
    shard_dep = _get(api, "/deployments/name/nightly_dunning/shard")
    assert dep["work_pool_name"] == shard_dep["work_pool_name"] == "relance"
    assert [s["active"] for s in dep["schedules"]] == [False]  # present, off until a site moves to the fleet
    assert shard_dep["schedules"] == []

    done = _wait_final(api, run["id"])
    assert done["state"]["type"] == "COMPLETED", (done["state"], workers.log()[-3000:])
    assert done["name"] == f"fleet-{AS_OF}"
    children = _children(api, run["id"])
    assert sorted(c["name"] for c in children) == [f"nightly-{AS_OF}-shard-0", f"nightly-{AS_OF}-shard-1"]
    for c in children:
        assert c["deployment_id"] == shard_dep["id"] and c["state"]["type"] == "COMPLETED"
        # a subflow: its parent task run is a task run of the fleet run (the UI's tree)
        assert _get(api, f"/task_runs/{c['parent_task_run_id']}")["flow_run_id"] == run["id"]
        assert c["parameters"]["db"] == str(root / f"shard-{c['parameters']['shard']}" / "relance.duckdb")
        # run by a worker of the pool (its log names the flow run it submitted)
        assert c["work_pool_name"] == "relance" and c["id"] in workers.log()
    assert run["id"] in workers.log()  # the fleet run itself too

    merged = root / "fleet.duckdb"
    for name, sql in COMPARE.items():
        got, want = _rows(merged, sql), _rows(single, sql)
        assert want, name  # the sample night has actions, deliveries, balances and metrics
        assert got == want, name  # exact: decimals compared as Decimal
    # the two shards really split the customers: each holds some, none holds one twice
    per_shard = [
        {r[0] for r in _rows(root / f"shard-{k}" / "relance.duckdb", "select distinct customer_id from aged_balance")}
        for k in range(2)
    ]
    assert per_shard[0] and per_shard[1] and not per_shard[0] & per_shard[1]
    # running the fleet again runs only the shards not complete: the fault test below


def test_one_pause_of_the_fleet_covers_every_shards_formal_notices_and_routes_the_decisions(fleet_pool, three_fleets):
    """Three debtors whose formal notice (requires_approval) comes on Mon 03-23: C3 in shard 0, C1 and
    C4 in shard 1 (md5 of the id, 2 shards). The shards' runs do not pause (defer_approval); the fleet
    run pauses once, listing the three; resumed with "approve all but C4's, rejected with a reason",
    each shard records its share and sends it; the merged database equals one database where the
    same decision was taken with `relance approve` and the dispatch that follows."""
    from tasks.dispatch import dispatch
    from tasks.dispatch.approval import approve
    from tasks.fleet.shards import shard_db, shard_of

    api, env, workers, _ = fleet_pool
    root, single, run = (three_fleets["approval"][k] for k in ("root", "single", "run"))
    three_fleets["approval"]["reference"](single)
    assert [shard_of(c, 2) for c in ("C1", "C3", "C4")] == [1, 0, 1]
    deadline = time.monotonic() + 150
    while (state := _get(api, f"/flow_runs/{run['id']}")["state"])["type"] != "PAUSED":
        assert state["type"] not in FINAL and time.monotonic() < deadline, (state, workers.log()[-3000:])
        time.sleep(1)
    children = _children(api, run["id"])
    assert len(children) == 2 and {c["state"]["type"] for c in children} == {"COMPLETED"}  # no shard paused
    art = _post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["relance-approvals"]}}})
    art = [a for a in art if a["flow_run_id"] == run["id"]]
    assert len(art) == 1 and all(f"`{a}`" in art[0]["data"] for a in NOTICES), art
    assert "shard 0: 1, shard 1: 2" in art[0]["data"]
    answer = {"approve_all": True, "reject": [NOTICES[2]], "reason": "disputed by phone", "by": "julie"}
    resumed = _post(api, f"/flow_runs/{run['id']}/resume", {"run_input": answer})
    assert resumed["status"] == "ACCEPT", resumed
    by = "julie (prefect-ui)"
    approve(str(single), NOTICE_DAY, approve_all=True, reject_ids=[NOTICES[2]], by=by, reason="disputed by phone")
    dispatch(str(single), NOTICE_DAY, str(single.parent / "outbox"))

    done = _wait_final(api, run["id"])
    assert done["state"]["type"] == "COMPLETED", (done["state"], workers.log()[-3000:])
    assert len(_children(api, run["id"])) == 2  # the decisions ran in the fleet run, no shard ran again
    decisions = (
        "select action_id, status, decided_by, decision_reason from dunning_actions "
        "where stage = 'formal_notice' order by 1"
    )
    why = (by, "disputed by phone")  # the reason is recorded on both, as `relance approve` does
    assert _rows(shard_db(root, 0), decisions) == [(NOTICES[1], "approved", *why)]
    assert _rows(shard_db(root, 1), decisions) == [(NOTICES[0], "approved", *why), (NOTICES[2], "rejected", *why)]
    merged = root / "fleet.duckdb"
    for name, sql in COMPARE.items():
        sql = sql.replace(str(AS_OF), str(NOTICE_DAY))
        assert _rows(merged, sql) == _rows(single, sql), name
    assert _rows(merged, decisions) == _rows(single, decisions)
    letters = _rows(
        merged,
        f"select action_id, status from deliveries where action_id in ('{NOTICES[0]}', '{NOTICES[2]}') order by all",
    )
    assert {s for a, s in letters if a == NOTICES[0]} == {"sent"}  # approved: sent (outbox)
    assert {s for a, s in letters if a == NOTICES[2]} == {"skipped"}  # rejected


def test_the_fleet_backfill_replays_every_shard_in_parallel_and_merges_each_date(fleet_pool, three_fleets):
    """fleet-backfill over 03-09..03-13 on 2 shards: two backfill/shard subflows, every date merged;
    each date's metrics and balances, and the replayed actions and deliveries, equal one backfill."""
    api, env, workers, _ = fleet_pool
    root, single, run = (three_fleets["backfill"][k] for k in ("root", "single", "run"))
    three_fleets["backfill"]["reference"](single)
    done = _wait_final(api, run["id"])
    assert done["state"]["type"] == "COMPLETED", (done["state"], workers.log()[-3000:])
    assert done["name"] == "fleet-backfill-2026-03-09-2026-03-13"
    shard_dep = _get(api, "/deployments/name/backfill/shard")
    children = _children(api, run["id"])
    assert sorted(c["name"] for c in children) == [f"backfill-{BACKFILL[0]}-{BACKFILL[1]}-shard-{k}" for k in (0, 1)]
    assert all(c["deployment_id"] == shard_dep["id"] and c["state"]["type"] == "COMPLETED" for c in children)
    merged = root / "fleet.duckdb"
    dated = "select * from {t} where as_of between '2026-03-09' and '2026-03-13' order by all"
    for t in ("aged_balance", "recovery_metrics", "invoice_snapshot"):
        got, want = _rows(merged, dated.format(t=t)), _rows(single, dated.format(t=t))
        assert want and got == want, t
        assert {r[0] for r in got} == {date(2026, 3, d) for d in range(9, 14)}, t  # every date merged
    for name in ("actions", "deliveries"):
        assert _rows(merged, COMPARE[name]) == _rows(single, COMPARE[name]), name


def test_a_worker_killed_mid_shard_fails_the_fleet_and_the_rerun_completes_it_never_sending_twice(fleet_pool, tmp_path):
    """Last in the file: it kills a worker. The fleet run here runs in a process of the test (not on
    a worker), its shards on the pool."""
    api, env, workers, fake = fleet_pool
    n = 40
    src = email_source(tmp_path / "src", n)  # n customers, one preventive email each tonight
    root = tmp_path / "fleet"
    params = {
        "as_of": str(AS_OF),
        "source": str(src),
        "shards": 2,
        "root": str(root),
        "send": True,
        "auto_approve": True,
    }
    fake.accepted.clear()
    fake.delay = 0.4  # slow answers: a shard is still sending when its worker dies
    t0 = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 5))
    fleet = _fleet_in_subprocess(env, **params)
    try:
        # wait for a shard run that is sending, on a worker: kill that worker's whole process group
        deadline = time.monotonic() + 120
        owner = None
        while time.monotonic() < deadline and owner is None:
            assert fleet.poll() is None, fleet.stdout.read()[-3000:]
            if len(fake.accepted) >= 2:
                run = _fleet_run_id(api, t0, root)
                for c in _children(api, run["id"]) if run else []:
                    if c["state"]["type"] == "RUNNING" and (owner := workers.owner_of(_pid(c))):
                        break
            time.sleep(0.1)
        assert owner, "no shard was caught sending"
        # the shard runs that worker started (one or both) die with it
        fleet_run = _fleet_run_id(api, t0, root)
        dying = [c for c in _children(api, fleet_run["id"]) if workers.owner_of(_pid(c)) == owner]
        workers.kill(owner)
        fake.delay = 0
        # Prefect 3.8.8: a run's process is supervised by the worker that started it; it loses it,
        # reports itself Crashed within seconds and exits — nobody has to mark it
        deadline = time.monotonic() + 60
        while {_get(api, f"/flow_runs/{c['id']}")["state"]["type"] for c in dying} != {"CRASHED"}:
            assert time.monotonic() < deadline, [_get(api, f"/flow_runs/{c['id']}")["state"] for c in dying]
            time.sleep(0.5)
        # … and the fleet run fails once no shard runs any more, naming the crashed shards
        out, _ = fleet.communicate(timeout=120)
        assert fleet.returncode != 0
        state = _get(api, f"/flow_runs/{fleet_run['id']}")["state"]
        assert state["type"] == "FAILED", state
        for c in dying:
            assert f"shard {c['parameters']['shard']} crashed" in state["message"], state
        dead = {c["parameters"]["shard"] for c in dying}
        complete_before = {
            c["parameters"]["shard"] for c in _children(api, fleet_run["id"]) if c["state"]["type"] == "COMPLETED"
        }
        assert complete_before == {0, 1} - dead  # the other shard's work stays
        # a slot a crashed run could not give back is freed by its lease's expiry (5 min); here at
        # once, as an operator would (`prefect gcl update relance-db-… --active-slots 0`)
        from tasks.locking import limit_name

        for c in dying:
            _request("PATCH", f"{api}/v2/concurrency_limits/{limit_name(c['parameters']['db'])}", {"active_slots": 0})
        workers.start("worker-c")

        # run the fleet again: only what is not complete runs, and the night completes
        t1 = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))
        rerun = _fleet_in_subprocess(env, **params)
        out, _ = rerun.communicate(timeout=150)
        assert rerun.returncode == 0, out[-3000:]
        second = _fleet_run_id(api, t1, root)
        assert second["state"]["type"] == "COMPLETED"
        assert {c["parameters"]["shard"] for c in _children(api, second["id"])} == dead  # only those
    finally:
        if fleet.poll() is None:
            fleet.kill()

    # at the SendGrid-compatible server: no delivery id twice; what the shards call sent arrived
    counts = collections.Counter(fake.delivery_ids())
    assert counts and max(counts.values()) == 1, [d for d, c in counts.items() if c > 1]
    rows = {
        d: s
        for k in range(2)
        for d, s in _rows(
            root / f"shard-{k}" / "relance.duckdb", "select delivery_id, status from deliveries where channel = 'email'"
        )
    }
    assert len(rows) == n
    sent = {d for d, s in rows.items() if s == "sent"}
    in_doubt = {d for d, s in rows.items() if s == "in_doubt"}  # in flight at the kill: reported, never re-sent
    assert sent | in_doubt == set(rows), collections.Counter(rows.values())
    assert sent <= set(counts) <= sent | in_doubt
    merged = _rows(root / "fleet.duckdb", "select delivery_id, status from deliveries where channel = 'email'")
    assert dict(merged) == rows


def test_the_fleet_routes_each_decision_to_the_shard_holding_the_action_or_decides_nothing():
    """flows.fleet._route, no server: ids go to their shard; approve_all reaches every shard with
    notices; an unknown id, an id both approved and rejected, or a rejection without a reason is one
    line and nothing is decided anywhere."""
    from flows.fleet import _route
    from relance.core.errors import UserError
    from tasks.approve import ApprovalInput

    by_shard = {0: [{"action_id": "C3|f"}], 1: [{"action_id": "C1|f"}, {"action_id": "C4|f"}], 2: []}
    routed = _route(ApprovalInput(approve_all=True, reject=["C4|f"], reason="disputed"), by_shard)
    assert routed == {
        0: {"approve_all": True, "action_ids": [], "reject_ids": []},
        1: {"approve_all": True, "action_ids": [], "reject_ids": ["C4|f"]},
    }
    assert _route(ApprovalInput(approve=["C1|f"]), by_shard) == {
        1: {"approve_all": False, "action_ids": ["C1|f"], "reject_ids": []}
    }
    for answer, said in (
        (ApprovalInput(approve=["C9|f"]), "not waiting for approval in any shard: C9|f"),
        (ApprovalInput(approve=["C1|f"], reject=["C1|f"], reason="x"), "C1|f both approved and rejected"),
        (ApprovalInput(reject=["C3|f"]), "say why the actions are rejected"),
        (ApprovalInput(), "approves and rejects nothing"),
    ):
        with pytest.raises(UserError, match=re.escape(said)):
            _route(answer, by_shard)
