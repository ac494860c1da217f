"""backfill: replay the ladder over a range of past dates, as if the nightly job had run on each.

ingest the source once → for each date in order: age it, then climb the ladder in replay mode
(deliveries `simulated`: computed, never rendered nor sent). Idempotent: running it again
changes nothing. Actions already taken by real runs are the ladder's state and are never
touched; the replay adds no simulated twin of them. The CLI's `relance backfill` calls
`backfill_run`; the Prefect flow `backfill` is the same function.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from prefect import flow

from relance.core.dates import parse_date
from relance.core.errors import UserError
from relance.core.policy import load_policy
from relance.core.settings import DEFAULT_DB
from tasks import audit, warehouse
from tasks.age import age_on
from tasks.alerts import alert
from tasks.escalate import Ladder
from tasks.fleet.export import export_shard
from tasks.ingest import ingest
from tasks.late_charges import make_statements
from tasks.locking import exclusive_db
from tasks.measure import measure_on
from tasks.report import report
from tasks.step import get_logger, in_flow_run, step
from tasks.writeback import write_back


class _Progress:
    """A progress bar on a terminal (stderr), a Prefect progress artifact inside a flow run."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.bar = self.task = self.artifact = None
        self.last_push = 0.0
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)
        if in_flow_run():
            from prefect.artifacts import create_progress_artifact

            try:
                self.artifact = create_progress_artifact(0.0, key="backfill-progress", description=label)
            except Exception as e:  # no API reachable: the flow goes on without its artifact
                get_logger().warning("backfill: progress artifact not available (%s)", e)

    def advance(self, day: date) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"{self.label} {day.isoformat()}")
        now = time.monotonic()
        if self.artifact is not None and (self.done == self.total or now - self.last_push >= 2.0):
            from prefect.artifacts import update_progress_artifact

            self.last_push = now
            try:
                update_progress_artifact(
                    self.artifact,
                    progress=100.0 * self.done / self.total,
                    description=f"{self.label}: {self.done}/{self.total} days, last {day}",
                )
            except Exception:
                pass

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@step(name="replay")
def replay(db: str, start: date, end: date, policy: str | None = None, run_ids: list[str] | None = None) -> dict:
    """Age and climb the ladder (replay mode) for each date from start to end, on one connection.

    run_ids: the audit rows of the dates (audit.start_dates), each completed as its date ends — but
    the last date's, whose start and counts come back as `last_day` for the backfill to complete it."""
    log = get_logger()
    pol = load_policy(policy)
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    actions: Counter[str] = Counter()
    ladders: Counter[str] = Counter()
    deliveries: Counter[str] = Counter()
    opened = closed = statements = 0
    aging = laddering = measuring = 0.0
    started = time.perf_counter()
    progress = _Progress(len(days), "backfill")
    try:
        with warehouse.open_db(db) as con:
            warehouse.ensure_schema(con)
            ladder = Ladder(con, pol, start, end)
            fingerprint = audit.source_fingerprint(con) if run_ids else None  # staging is the same for every day
            aged: list[date] = []  # the days this replay aged, all from the staging ingested once
            for n, day in enumerate(days):
                run = audit.Run(run_ids[n], "backfill", day) if run_ids else None
                if run:
                    audit.begin(run)
                t0 = time.perf_counter()
                age_on(con, day, pol)
                aged.append(day)
                t1 = time.perf_counter()
                s = ladder.run(day, mode="replay", run_id=run.run_id if run else None)
                if pol.late_charges_statement.enabled:  # the statements of charges, simulated
                    made = make_statements(con, day, pol, mode="replay", run_id=run.run_id if run else None)
                    statements += made.get("statements", 0)
                    s = {**s, "late_charge_statements": made.get("statements", 0)}
                t2 = time.perf_counter()
                # the point-in-time views at those days are their invoice_snapshot: measure reads
                # them there and allocates again only the dates before the replay's start
                m = measure_on(con, day, pol, snapshot_dates=aged, run_id=run.run_id if run else None)
                if run:
                    run.step("replay", s)
                    run.step("measure", m)
                    if n < len(days) - 1:
                        audit.finish(con, run, fingerprint=fingerprint)
                    else:
                        last_day = {"started_at": run.started_at, "steps": run.steps}
                measuring += time.perf_counter() - t2
                aging, laddering = aging + t1 - t0, laddering + t2 - t1
                actions.update(s["actions_by_stage"])
                ladders.update(s.get("actions_by_ladder", {}))
                deliveries.update(s["deliveries_by_status"])
                opened += s["episodes_opened"]
                closed += s["episodes_closed"]
                progress.advance(day)
    finally:
        progress.close()
    summary = {
        "days": len(days),
        "actions": sum(actions.values()),
        "actions_by_stage": dict(actions),
        "actions_by_ladder": dict(ladders),
        "deliveries_by_status": dict(deliveries),
        "episodes_opened": opened,
        "episodes_closed": closed,
        "late_charge_statements": statements,
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_aging": round(aging, 2),
        "seconds_ladder": round(laddering, 2),
        "seconds_metrics": round(measuring, 2),
    }
    if run_ids:
        summary["last_day"] = last_day
    log.info("replay %s..%s: %d days, %d actions %s", start, end, len(days), summary["actions"], dict(actions))
    return summary


def backfill_run(
    start: date | str,
    end: date | str,
    source: str,
    db: str = str(DEFAULT_DB),
    policy: str | None = None,
    source_schema: str | None = None,  # None: RELANCE_SOURCE_SCHEMA, else public
    metrics_target: str | None = None,
    report_dir: str | None = None,
    language: str = "fr",
    fleet_root: str | None = None,
    shard: int | None = None,
) -> dict:
    """Replay the ladder for every date from start to end (inclusive), in order, with each
    date's recovery metrics; then the report of the last date (and the write-back, if asked).

    fleet_root, shard: the backfill is shard `shard` of the fleet at fleet_root (tasks/fleet): no
    report of its own; once done, each replayed date's marts are exported to fleet_root/exports
    (the actions, deliveries and staging with the last date), each date's _done marker last."""
    log = get_logger()
    started = time.perf_counter()
    start, end = parse_date(start, "start"), parse_date(end, "end")
    if start is None or end is None:
        raise UserError("backfill needs a start and an end date (YYYY-MM-DD)")
    if end < start:
        raise UserError(f"backfill end {end} is before start {start}")
    load_policy(policy)  # a policy that does not validate stops before anything is written
    if fleet_root is not None and shard is None:
        raise UserError("a fleet shard's backfill needs its shard number (--shard K) with --fleet-root")

    # Staging does not depend on the date: load the source once. Its rejected rows are recorded
    # under the last date of the range (the day the source is read as of).
    with exclusive_db(db):  # in a flow run: one run per DuckDB file (a Prefect concurrency limit)
        # the audit record: one row per date, written ahead (`running`), each completed as its date ends;
        # the last date's carries the ingest and is completed after the report (tasks/audit.py)
        days = [start + timedelta(n) for n in range((end - start).days + 1)]
        with warehouse.open_db(db) as con:
            runs = audit.start_dates(con, "backfill", days, policy=policy, source=source)
        try:
            loaded = ingest(source, db, end, source_schema, policy)
            replayed = replay(db, start, end, policy, [r.run_id for r in runs])
            last = runs[-1]
            last.step("ingest", loaded)
            last_day = replayed.pop("last_day")
            last.started_at = last_day["started_at"]
            last.steps.update(last_day["steps"])
            reported = (
                report(db, end, report_dir or str(Path(db).parent / "reports"), language, policy)
                if fleet_root is None  # a shard's figures are reported by its fleet (merged database)
                else None
            )
            written = last.step(
                "write_back", write_back(db, end, metrics_target, since=start) if metrics_target else None
            )
        except BaseException as e:
            try:
                with warehouse.open_db(db) as con:
                    audit.fail_running(con, [r.run_id for r in runs], e)
            except Exception as inner:  # never hide the backfill's own error behind the record's
                log.error("backfill: audit rows not recorded as failed (%s)", inner)
            raise
        with warehouse.open_db(db) as con:
            audit.finish(con, last)
        exported = (
            [export_shard(db, fleet_root, shard, day, state=day == end) for day in days]
            if fleet_root is not None
            else None
        )

    summary = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "db": str(db),
        "ingest": loaded,
        "replay": replayed,
        "report": reported,
        "write_back": written,
        "export": {"dates": len(exported), "seconds": round(sum(e["seconds"] for e in exported), 2)}
        if exported
        else None,
        "run_ids": [r.run_id for r in runs],
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("backfill %s..%s done in %.1f s", start, end, summary["seconds"])
    return summary


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    shard = f"-shard-{p['shard']}" if p.get("shard") is not None else ""
    return f"backfill-{p.get('start')}-{p.get('end')}{shard}"


backfill = flow(
    backfill_run, name="backfill", flow_run_name=_run_name, log_prints=True, on_failure=[alert], on_crashed=[alert]
)
