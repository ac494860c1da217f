"""nightly_fleet: the night's dunning run split by customer into shards that a Prefect work pool runs.

split the receivables by customer into N shards (one read of the source) → start one run of the
`nightly_dunning/shard` deployment per shard not yet complete for the date, all at once, as
subflows of this run (the UI shows the tree), each on its own DuckDB file and outbox under
`root/shard-k/`, and wait for them together → (without auto_approve: one approval of every shard's
formal notices, the decisions applied and dispatched shard by shard) → merge the shards' marts into
`root/fleet.duckdb` → one report → one write-back.

A shard that fails fails the fleet run once every other shard has ended; their work stays (each
shard writes `root/exports/_done/as_of=D/shard=k.json` last), so running the fleet again for the
date runs only the shards that are not complete, and the ledger of each shard never sends twice.
`backfill_fleet` is the same over a range of dates with the `backfill/shard` deployment, merged per date.
The layout under `root` and the shard key: tasks/fleet/; running it on a work pool: README
("Running the fleet on a work pool").
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from prefect import flow

from relance.core.dates import default_as_of, parse_date
from relance.core.errors import UserError
from relance.core.policy import load_policy
from tasks.alerts import alert
from tasks.fleet.export import export_shard, shard_complete
from tasks.fleet.merge import merge_date
from tasks.fleet.shards import configured_shards, shard_db, shard_dir, shard_source
from tasks.fleet.split import split_source
from tasks.locking import exclusive_db
from tasks.report import report
from tasks.step import get_logger, step
from tasks.writeback import write_back

SHARD_DEPLOYMENT = "nightly_dunning/shard"
BACKFILL_SHARD_DEPLOYMENT = "backfill/shard"
POLL_SECONDS = 1.0


class ShardsFailed(UserError):
    """One or more shard runs did not complete: the fleet run fails, the others' work stays."""


def _shard_paths(root: str, k: int) -> dict[str, str]:
    return {
        "source": str(shard_source(root, k)),
        "db": str(shard_db(root, k)),
        "outbox": str(shard_dir(root, k) / "outbox"),
    }


@step(name="split")
def split(source: str, root: str, shards: int, source_schema: str | None = None) -> dict:
    """Read the source once and write each shard's source as Parquet under root/shard-k/source."""
    return split_source(source, root, shards, source_schema)


def run_shards(deployment: str, runs: dict[int, dict[str, Any]], label: str) -> dict[int, str]:
    """Start one deployment run per shard (as subflows of this flow run), all at once, then wait for
    them together. Returns each shard's final state type; raises ShardsFailed naming the shards that
    did not complete, once none is running any more."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    log = get_logger()
    started = {
        k: run_deployment(
            deployment,
            parameters=params,
            flow_run_name=f"{label}-shard-{k}",
            tags=["relance", "fleet", f"shard-{k}"],
            timeout=0,  # start them all; they are awaited together below
            as_subflow=True,
        )
        for k, params in runs.items()
    }
    log.info("fleet: started %s", ", ".join(f"shard {k} → {r.name} ({r.id})" for k, r in started.items()))
    final: dict[int, str] = {}
    with get_client(sync_client=True) as client:
        while len(final) < len(started):
            for k, r in started.items():
                if k in final:
                    continue
                state = client.read_flow_run(r.id).state
                if state is not None and state.is_final():
                    final[k] = state.type.value
                    log.info("fleet: shard %d %s (%s)", k, state.type.value.lower(), state.message or "")
            if len(final) < len(started):
                time.sleep(POLL_SECONDS)
    failed = {k: s for k, s in sorted(final.items()) if s != "COMPLETED"}
    if failed:
        raise ShardsFailed(
            "fleet: "
            + ", ".join(f"shard {k} {s.lower()}" for k, s in failed.items())
            + f" ({len(final) - len(failed)} of {len(final)} completed and kept); run the fleet again for the rest"
        )
    return final


def _pending_by_shard(root: str, shards: list[int], as_of: date) -> dict[int, list[dict]]:
    from tasks.approve import pending_notices

    out: dict[int, list[dict]] = {}
    for k in shards:
        db = _shard_paths(root, k)["db"]
        with exclusive_db(db):
            out[k] = pending_notices(db, as_of)
    return out


def _route(answer: Any, by_shard: dict[int, list[dict]]) -> dict[int, dict]:
    """The decision for each shard's database: its share of the ids, approve_all as answered.
    One clear error (nothing decided anywhere) for an unknown id, an id both approved and rejected,
    or a rejection without a reason."""
    where = {n["action_id"]: k for k, notices in by_shard.items() for n in notices}
    approve, reject = list(dict.fromkeys(answer.approve)), list(dict.fromkeys(answer.reject))
    if not (answer.approve_all or approve or reject):
        raise UserError("approval: the answer approves and rejects nothing")
    both = sorted(set(approve) & set(reject))
    if both:
        raise UserError(f"approval: {', '.join(both)} both approved and rejected")
    unknown = [i for i in approve + reject if i not in where]
    if unknown:
        raise UserError(f"approval: not waiting for approval in any shard: {', '.join(unknown)}")
    if reject and not (answer.reason or "").strip():
        raise UserError("approval: say why the actions are rejected (reason)")
    routed: dict[int, dict] = {}
    for k, notices in by_shard.items():
        ids = {n["action_id"] for n in notices}
        mine = {
            "approve_all": bool(answer.approve_all) and bool(ids),
            "action_ids": [i for i in approve if i in ids],
            "reject_ids": [i for i in reject if i in ids],
        }
        if mine["approve_all"] or mine["action_ids"] or mine["reject_ids"]:
            routed[k] = mine
    return routed


def approve_across_shards(
    root: str, shards: list[int], as_of: date, send: bool, policy: str | None, timeout_hours: float
) -> dict:
    """One pause of the fleet run for every shard's formal notices waiting for approval — and its
    statements of late-payment charges (sql/dispatch/pending_approval.sql lists both, `decide`
    records both: the same as one database's approval); the decisions go to each shard's database
    (with the code of `relance approve`), then that shard dispatches what was approved and exports
    its marts again (its statements with their new statuses too) — one shard at a time, each
    holding its database's slot (one writer per DuckDB file)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    from relance.core.settings import get_settings
    from tasks import audit, warehouse
    from tasks.approve import ARTIFACT_KEY, ApprovalInput, _resume_after_timeout, approval_markdown
    from tasks.dispatch import dispatch, ledger
    from tasks.dispatch.approval import decide

    log = get_logger()
    by_shard = _pending_by_shard(root, shards, as_of)
    notices = [n for k in sorted(by_shard) for n in by_shard[k]]
    if not notices:
        log.info("approval: nothing waits for approval in any shard")
        return {"asked": False, "pending": 0}
    drafts: list[dict] = []
    for k in sorted(by_shard):
        if not by_shard[k]:
            continue
        p = _shard_paths(root, k)
        try:
            from tasks.dispatch.drafts import render_drafts

            with exclusive_db(p["db"]):
                drafts += render_drafts(p["db"], as_of, p["outbox"], policy=policy)
        except Exception as e:  # the drafts help the decision; their failure must not stop the asking
            log.error("approval: drafts of shard %d not rendered (%s: %s)", k, type(e).__name__, e)
    count = {k: len(v) for k, v in by_shard.items() if v}
    create_markdown_artifact(
        approval_markdown(notices, as_of, str(root), timeout_hours, drafts)
        + "\nShards: "
        + ", ".join(f"shard {k}: {n}" for k, n in sorted(count.items()))
        + "\n",
        key=ARTIFACT_KEY,
        description=f"{len(notices)} action(s) waiting for approval (formal notices …) in {len(count)} shard(s), {as_of}",
    )
    timeout = max(1, int(round(timeout_hours * 3600)))
    log.info("approval: %d action(s) wait in shards %s; pausing for up to %g h", len(notices), count, timeout_hours)
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput,
            timeout=timeout,
            poll_interval=max(1, int(min(get_settings().approval_poll_s, timeout / 4))),
            key=f"fleet-approval-{as_of}-{uuid.uuid4().hex[:8]}",
        )
    except FlowPauseTimeout:
        _resume_after_timeout(len(notices), timeout_hours)
        log.warning("approval: no answer within %g h; %d action(s) stay pending_approval", timeout_hours, len(notices))
        return {"asked": True, "pending": len(notices), "answered": False}
    by = (answer.by or "").strip() or "someone"
    try:
        routed = _route(answer, by_shard)
    except UserError as e:
        log.error("%s — nothing decided; the notices stay pending_approval", e)
        return {"asked": True, "pending": len(notices), "answered": True, "error": str(e)}
    decided: dict[int, dict] = {}
    for k, mine in sorted(routed.items()):
        p = _shard_paths(root, k)
        with exclusive_db(p["db"]):
            with warehouse.open_db(p["db"]) as con:
                ledger.ensure_tables(con)
                with audit.audited(
                    p["db"],
                    "approve",
                    as_of,
                    con=con,
                    actor=f"{by} (prefect-ui)",
                    run_id=f"{audit.flow_run_id()}/approve/shard-{k}",
                ) as run:
                    decided[k] = run.step(
                        "approve",
                        decide(
                            con, as_of, by=f"{by} (prefect-ui)", reason=answer.reason or None, run_id=run.run_id, **mine
                        ),
                    )
            with audit.audited(p["db"], "dispatch", as_of, policy=policy, actor="fleet") as run:
                run.step("dispatch", dispatch(p["db"], as_of, p["outbox"], send=send, policy=policy))
            export_shard(p["db"], root, k, as_of)  # the deliveries changed: the shard's marts again
        log.info("approval in shard %d: approved %s, rejected %s", k, decided[k]["approved"], decided[k]["rejected"])
    return {
        "asked": True,
        "pending": len(notices),
        "answered": True,
        "by": by,
        "approved": [i for d in decided.values() for i in d["approved"]],
        "rejected": [i for d in decided.values() for i in d["rejected"]],
        "still_pending": [i for d in decided.values() for i in d["still_pending"]],
        "shards": sorted(decided),
    }


def nightly_fleet_run(
    as_of: date | str | None = None,
    source: str = ".relance/sample",
    shards: int = 4,
    root: str = ".relance/fleet",
    policy: str | None = None,
    send: bool = False,
    auto_approve: bool = False,
    approval_timeout_hours: float = 6.0,
    allow_stale: bool = False,
    source_schema: str | None = None,
    metrics_target: str | None = None,
    language: str = "fr",
    shard_deployment: str = SHARD_DEPLOYMENT,
) -> dict:
    """The nightly run of as_of across `shards` shards under `root` (see the module docstring)."""
    log = get_logger()
    started = time.perf_counter()
    as_of = parse_date(as_of, "as_of") or default_as_of()
    load_policy(policy)  # a policy that does not validate stops the fleet before anything is written
    root = str(Path(root).resolve())  # the shards' workers get it as it is: one path for all
    shards = configured_shards(root, shards)  # fleet.json's N; another N needs `relance fleet reshard`
    todo = [k for k in range(shards) if not shard_complete(root, k, as_of)]
    split_summary = split(source, root, shards, source_schema) if todo else {"skipped": "every shard complete"}
    params = {
        k: {
            "as_of": as_of.isoformat(),
            **_shard_paths(root, k),
            "policy": policy,
            "send": send,
            "auto_approve": auto_approve,
            "defer_approval": not auto_approve,  # one approval below, for every shard
            "approval_timeout_hours": approval_timeout_hours,
            "allow_stale": allow_stale,
            "language": language,
            "fleet_root": root,
            "shard": k,
        }
        for k in todo
    }
    log.info("fleet %s: %d shard(s), %d to run (%s), under %s", as_of, shards, len(todo), todo, root)
    ran = run_shards(shard_deployment, params, f"nightly-{as_of}") if todo else {}
    approval = (
        approve_across_shards(root, list(range(shards)), as_of, send, policy, approval_timeout_hours)
        if not auto_approve
        else {"asked": False}
    )
    with exclusive_db(Path(root) / "fleet.duckdb"):  # one writer: two fleet runs on one root wait
        fleet_db = str(merge_date(root, as_of, shards))
        reported = report(fleet_db, as_of, str(Path(root) / "reports"), language, policy)
        written = write_back(fleet_db, as_of, metrics_target) if metrics_target else None
    summary = {
        "as_of": as_of.isoformat(),
        "root": root,
        "shards": shards,
        "ran": {str(k): s for k, s in ran.items()},
        "already_complete": [k for k in range(shards) if k not in todo],
        "split": split_summary,
        "approval": approval,
        "fleet_db": fleet_db,
        "report": reported,
        "write_back": written,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("fleet %s done in %.1f s: ran shards %s, merged into %s", as_of, summary["seconds"], todo, fleet_db)
    return summary


def backfill_fleet_run(
    start: date | str,
    end: date | str,
    source: str = ".relance/sample",
    shards: int = 4,
    root: str = ".relance/fleet",
    policy: str | None = None,
    source_schema: str | None = None,
    metrics_target: str | None = None,
    language: str = "fr",
    shard_deployment: str = BACKFILL_SHARD_DEPLOYMENT,
) -> dict:
    """Replay start..end in every shard at once (`backfill/shard` runs), then merge each date."""
    log = get_logger()
    started = time.perf_counter()
    start, end = parse_date(start, "start"), parse_date(end, "end")
    if start is None or end is None:
        raise UserError("backfill needs a start and an end date (YYYY-MM-DD)")
    if end < start:
        raise UserError(f"backfill end {end} is before start {start}")
    load_policy(policy)
    root = str(Path(root).resolve())
    shards = configured_shards(root, shards)
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    todo = [k for k in range(shards) if not all(shard_complete(root, k, d) for d in days)]
    split_summary = split(source, root, shards, source_schema) if todo else {"skipped": "every shard complete"}
    params = {
        k: {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "source": _shard_paths(root, k)["source"],
            "db": _shard_paths(root, k)["db"],
            "policy": policy,
            "language": language,
            "fleet_root": root,
            "shard": k,
        }
        for k in todo
    }
    log.info("fleet backfill %s..%s: %d shard(s), %d to run (%s)", start, end, shards, len(todo), todo)
    ran = run_shards(shard_deployment, params, f"backfill-{start}-{end}") if todo else {}
    with exclusive_db(Path(root) / "fleet.duckdb"):
        fleet_db = None
        for d in days:  # merged per date
            fleet_db = str(merge_date(root, d, shards))
        reported = report(fleet_db, end, str(Path(root) / "reports"), language, policy)
        written = write_back(fleet_db, end, metrics_target, since=start) if metrics_target else None
    summary = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "root": root,
        "shards": shards,
        "ran": {str(k): s for k, s in ran.items()},
        "split": split_summary,
        "merged_days": len(days),
        "fleet_db": fleet_db,
        "report": reported,
        "write_back": written,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("fleet backfill %s..%s done in %.1f s", start, end, summary["seconds"])
    return summary


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"fleet-{flow_run.parameters.get('as_of') or default_as_of()}"


def _backfill_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"fleet-backfill-{p.get('start')}-{p.get('end')}"


nightly_fleet = flow(
    nightly_fleet_run,
    name="nightly_fleet",
    flow_run_name=_run_name,
    log_prints=True,
    on_failure=[alert],
    on_crashed=[alert],
)
backfill_fleet = flow(
    backfill_fleet_run,
    name="backfill_fleet",
    flow_run_name=_backfill_run_name,
    log_prints=True,
    on_failure=[alert],
    on_crashed=[alert],
)
