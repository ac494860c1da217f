"""nightly_dunning: the night's dunning run for one date, as finance would describe it.

ingest the receivables → check that they are current (the freshness guard) → age them → escalate (the ladder) → (when the
policy enables them: make the statements of late-payment charges on invoices paid late) → (in the Prefect UI: ask for the
approval of the formal notices and statements) → dispatch the messages → measure recovery → report to finance
(→ write the metrics back to PostgreSQL, when asked).
The CLI's `relance run` calls `nightly_run` directly; the Prefect flow `nightly_dunning` is the
same function, in which each step becomes a task run; it holds the database's concurrency slot
(one run per DuckDB file) and alerts operations when it fails (tasks.alerts).

When the source looks stale (tasks/freshness.py: no payment or invoice for too many business
days, or rows gone since the previous run), the run still loads, ages, measures and reports (the
report shows a red banner) but plans no contact, sends nothing, writes no metrics back, and then
fails with a one-line reason (the audit row's `freshness` says `stale`), which alerts operations.
allow_stale=True (`relance run --allow-stale`) lets one run go on regardless (`stale_allowed`).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from prefect import flow

from relance.core.dates import default_as_of, parse_date
from relance.core.errors import UserError
from relance.core.policy import load_policy
from relance.core.settings import DEFAULT_DB
from tasks.age import age
from tasks.alerts import alert
from tasks.approve import ask_for_approval
from tasks.audit import audited
from tasks.dispatch import dispatch
from tasks.escalate import escalate
from tasks.events import apply_events
from tasks.fleet.export import export_shard
from tasks.freshness import SourceStale, check_freshness, stale_message
from tasks.ingest import ingest
from tasks.late_charges import late_charges
from tasks.locking import exclusive_db
from tasks.measure import measure
from tasks.report import publish_artifacts, report
from tasks.step import get_logger
from tasks.writeback import write_back


def nightly_run(
    as_of: date | None = None,
    source: str = ".relance/sample",
    db: str = str(DEFAULT_DB),
    outbox: str | None = None,
    send: bool = False,
    auto_approve: bool = False,
    policy: str | None = None,
    source_schema: str | None = None,  # None: RELANCE_SOURCE_SCHEMA, else public
    metrics_target: str | None = None,
    report_dir: str | None = None,
    language: str = "fr",
    approval_timeout_hours: float = 6.0,
    allow_stale: bool = False,
    defer_approval: bool = False,
    fleet_root: str | None = None,
    shard: int | None = None,
) -> dict:
    """Run the nightly job for as_of (default: the scheduled date in Europe/Paris).

    approval_timeout_hours: in a flow run, how long to wait for the approval of formal notices.
    allow_stale: go on (plan and send) even though the source looks stale — for this run only.
    defer_approval: do not pause for approval here: the notices stay pending_approval for the caller
    (the fleet run asks once for every shard, flows/fleet.py).
    fleet_root, shard: the run is shard `shard` of the fleet at fleet_root (tasks/fleet): it writes
    no report of its own (the fleet reports from its merged database) and, once the run succeeded,
    exports its marts of as_of to fleet_root/exports (tasks/fleet/export.py), the _done marker last."""
    log = get_logger()
    started = time.perf_counter()
    as_of = parse_date(as_of, "as_of") or default_as_of()
    pol = load_policy(policy)  # a policy that does not validate stops the run before anything is written
    outbox = outbox or str(Path(db).parent / "outbox")
    if fleet_root is not None and shard is None:
        raise UserError("a fleet shard's run needs its shard number (--shard K) with --fleet-root")

    with exclusive_db(db):  # in a flow run: one run per DuckDB file (a Prefect concurrency limit)
        with audited(db, "nightly", as_of, policy=policy, source=source) as run:  # the `runs` row
            # provider events journaled since the last run (bounces → letters)
            events = run.step("events", apply_events(db))
            loaded = run.step("ingest", ingest(source, db, as_of, source_schema, policy))
            # the freshness guard: a stale source is aged and reported, never dunned on (tasks/freshness.py)
            fresh = check_freshness(db, as_of, source, policy, allow_stale, run_id=run.run_id)
            run.freshness, run.allow_stale = fresh["verdict"], bool(allow_stale)
            held = fresh["stale"] and not fresh["allowed"]
            aged = run.step("age", age(db, as_of, policy))
            if held:
                skipped = {"skipped": "stale source"}
                laddered, approval, dispatched = {**skipped, "actions": 0}, None, {**skipped, "totals": {}}
                statements = None
            else:
                laddered = run.step("escalate", escalate(db, as_of, policy, mode="live", run_id=run.run_id))
                # the statements of late-payment charges on invoices paid late (opt-in, tasks/late_charges.py)
                statements = (
                    run.step("late_charges", late_charges(db, as_of, policy, mode="live", run_id=run.run_id))
                    if pol.late_charges_statement.enabled
                    else None
                )
                approval = run.step(
                    "approval",
                    {"asked": False, "deferred": True}
                    if defer_approval
                    else ask_for_approval(db, as_of, outbox, auto_approve, approval_timeout_hours, policy=policy),
                )
                dispatched = run.step(
                    "dispatch", dispatch(db, as_of, outbox, send=send, policy=policy, auto_approve=auto_approve)
                )
            measured = run.step("measure", measure(db, as_of, policy, run_id=run.run_id))
            reported = None
            if fleet_root is None:  # a shard's figures are reported by its fleet (merged database)
                reported = report(db, as_of, report_dir or str(Path(db).parent / "reports"), language, policy)
                publish_artifacts(db, as_of, reported, policy)
            if held:  # after the report: its red banner says why nothing was planned
                where = f" (report: {reported.get('html')})" if reported else f" (fleet shard {shard})"
                raise SourceStale(stale_message(fresh) + where)
            # last: a PostgreSQL outage fails the run only after every local output exists
            written = run.step("write_back", write_back(db, as_of, metrics_target) if metrics_target else None)
        # a fleet shard: its marts of as_of for the fleet's merge, once the run is recorded as done
        exported = export_shard(db, fleet_root, shard, as_of) if fleet_root is not None else None

    summary = {
        "as_of": as_of.isoformat(),
        "db": str(db),
        "outbox": outbox,
        "events": events,
        "ingest": loaded,
        "freshness": fresh,
        "age": aged,
        "escalate": laddered,
        "late_charges": statements,
        "approval": approval,
        "dispatch": dispatched,
        "measure": measured,
        "report": reported,
        "write_back": written,
        "export": exported,
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info(
        "nightly run for %s done in %.1f s: %d rows rejected, %d actions, deliveries %s, %d pending approval; "
        "steps (s): %s",
        as_of,
        summary["seconds"],
        loaded.get("rows_rejected", 0),
        laddered.get("actions", 0),
        dispatched.get("totals"),
        dispatched.get("pending_approval", 0),
        {k: v.get("seconds") for k, v in summary.items() if isinstance(v, dict) and "seconds" in v},
    )
    return summary


def _run_name() -> str:
    from prefect.runtime import flow_run

    as_of, shard = flow_run.parameters.get("as_of"), flow_run.parameters.get("shard")
    return f"nightly-{as_of or default_as_of()}" + (f"-shard-{shard}" if shard is not None else "")


nightly_dunning = flow(
    nightly_run,
    name="nightly_dunning",
    flow_run_name=_run_name,
    log_prints=True,
    on_failure=[alert],
    on_crashed=[alert],
)
