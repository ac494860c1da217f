"""One measured piece of the benchmark, run in its own process so that its peak memory (max RSS)
is its own: `python -m bench.child MODE JSON-ARGS`; prints one JSON line (prefixed `RESULT `).

Modes: prepare (ingest + a short backfill, the ladder's state; untimed), nightly (each step of
one nightly run, outbox provider), sendgrid (the night's emails to a SendGrid-compatible server on
loopback, run in another process), pandas (bench/baseline_pandas.py against the SQL's actions),
backfill (a backfill over a range, timed).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta


def _d(s: str) -> date:
    return date.fromisoformat(s)


def prepare(a: dict) -> dict:
    from flows.backfill import backfill_run

    end = _d(a["as_of"]) - timedelta(days=1)
    start = end - timedelta(days=a["backfill_days"] - 1)
    t = time.perf_counter()
    s = backfill_run(start, end, a["source"], a["db"], policy=a.get("policy"), report_dir=a["work"] + "/reports-prep")
    # A live night reads only real steps (contract §3, "Live state and replays"): the replayed
    # history stands for nights that really ran, so its steps become real ones (actions planned,
    # messages sent) — otherwise the timed night would be every debtor's first step.
    import duckdb

    con = duckdb.connect(a["db"])
    con.execute("update dunning_actions set status = 'planned', mode = 'live' where status = 'simulated'")
    con.execute(
        "update deliveries set status = 'sent', sent_at = cast(created_at as timestamp) where status = 'simulated'"
    )
    con.close()
    return {"seconds": round(time.perf_counter() - t, 2), "actions": s["replay"]["actions"]}


def nightly(a: dict) -> dict:
    """The steps of flows/nightly.py::nightly_run, each timed (same calls, same order)."""
    from tasks.age import age
    from tasks.dispatch import dispatch
    from tasks.escalate import escalate
    from tasks.ingest import ingest
    from tasks.measure import measure
    from tasks.report import publish_artifacts, report

    as_of, db, work, policy = _d(a["as_of"]), a["db"], a["work"], a.get("policy")
    out: dict = {}

    def timed(name, fn, *args, **kw):
        t = time.perf_counter()
        r = fn(*args, **kw)
        out[f"{name}_s"] = round(time.perf_counter() - t, 3)
        return r

    t0 = time.perf_counter()
    run_id = "bench-" + os.urandom(6).hex()  # the audited run's id, as nightly_run passes it
    timed("ingest", ingest, a["source"], db, as_of, policy=policy)
    aged = timed("age", age, db, as_of, policy)
    esc = timed("ladder", escalate, db, as_of, policy, mode="live", run_id=run_id)
    disp = timed("dispatch", dispatch, db, as_of, work + "/outbox", send=False, policy=policy)
    timed("metrics", measure, db, as_of, policy, run_id=run_id)
    t = time.perf_counter()
    rep = report(db, as_of, work + "/reports", "fr", policy)
    publish_artifacts(db, as_of, rep, policy)
    out["report_s"] = round(time.perf_counter() - t, 3)
    out["nightly_s"] = round(time.perf_counter() - t0, 3)
    out["open_invoices"] = aged["open_invoices"]
    out["actions"] = esc.get("actions", esc.get("actions_created"))
    out["deliveries"] = disp["totals"]
    return out


def _serve(conn, api_key: str, delay: float) -> None:  # pragma: no cover - child process
    from tests.fakes.sendgrid_server import FakeSendGrid

    fake = FakeSendGrid(api_key=api_key)
    fake.delay = delay
    fake.start()
    conn.send(fake.url)
    conn.recv()
    conn.send({"accepted": len(fake.accepted), "distinct": len(set(fake.delivery_ids()))})
    fake.stop()


def sendgrid(a: dict) -> dict:
    """Tonight's email deliveries sent through SendGrid's v3 API to the loopback fake (own process);
    the other channels of the night are set aside (skipped) so that only email is measured."""
    import duckdb

    from tasks.age import age
    from tasks.dispatch import dispatch
    from tasks.escalate import escalate
    from tasks.ingest import ingest

    as_of, db, work = _d(a["as_of"]), a["db"], a["work"]
    ingest(a["source"], db, as_of)
    age(db, as_of)
    escalate(db, as_of, None, mode="live")
    with duckdb.connect(db) as con:
        con.execute(
            "update deliveries set status = 'skipped', last_error = 'bench: email only' "
            "where status = 'planned' and channel <> 'email'"
        )
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    key = "SG.bench-" + os.urandom(6).hex()
    proc = ctx.Process(target=_serve, args=(child, key, a.get("delay", 0.0)), daemon=True)
    proc.start()
    url = parent.recv()
    os.environ["RELANCE_SENDGRID_HOST"], os.environ["SENDGRID_API_KEY"] = url, key
    t = time.perf_counter()
    s = dispatch(db, as_of, work + "/outbox-send", send=True, now=datetime.now(UTC))
    seconds = time.perf_counter() - t
    parent.send("stop")
    server = parent.recv()
    proc.join(10)
    emails = s["by_channel"].get("email", {})
    n = sum(emails.values())
    return {
        "sendgrid_s": round(seconds, 3),
        "emails": n,
        "email_statuses": emails,
        "server_accepted": server["accepted"],
        "server_distinct": server["distinct"],
        "emails_per_s": round(n / seconds, 1) if seconds else None,
    }


def pandas(a: dict) -> dict:
    from bench import baseline_pandas

    return baseline_pandas.compare(a["db"], _d(a["as_of"]))


def backfill(a: dict) -> dict:
    from flows.backfill import backfill_run

    end = _d(a["as_of"])
    start = end - timedelta(days=a["days"] - 1)
    t = time.perf_counter()
    s = backfill_run(start, end, a["source"], a["db"], report_dir=a["work"] + "/reports-bf")
    r = s["replay"]
    return {
        "backfill_s": round(time.perf_counter() - t, 2),
        "days": r["days"],
        "actions": r["actions"],
        "aging_s": r["seconds_aging"],
        "ladder_s": r["seconds_ladder"],
        "metrics_s": r["seconds_metrics"],
        "ingest_s": round(s["seconds"] - r["seconds"], 2),
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if args.get("profile"):
        try:
            from pyinstrument import Profiler  # optional: only for --profile
        except ImportError:
            raise SystemExit("bench --profile needs pyinstrument: .venv/bin/pip install pyinstrument") from None

        prof = Profiler(interval=0.01)
        prof.start()
    result = globals()[mode](args)
    if args.get("profile"):
        prof.stop()
        with open(args["profile"], "w") as f:
            f.write(prof.output_text(unicode=False, color=False, show_all=False))
    print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
