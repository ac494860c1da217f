"""The fleet on one machine, without a Prefect server: `relance fleet run|backfill` (README "Fleet").

split the source → run each shard not yet complete for the date in a local process (`relance run …
--fleet-root ROOT --shard K`, `jobs` at a time, each logging to ROOT/shard-K/logs/) → merge the
shards' exports into ROOT/fleet.duckdb → one report (ROOT/reports) → one write-back, when asked.

A failed shard fails the command with one line naming it and its log; the other shards' work stays
(their _done markers): the same command run again re-runs only the shards not complete for the date
(the delivery ledger of each shard's database already prevents a second send). Inside Prefect, the
fleet flow (flows/fleet.py) runs the shards as deployment runs instead.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from tasks.fleet.export import shard_complete
from tasks.fleet.merge import merge_date
from tasks.fleet.shards import FleetError, configured_shards, fleet_db, shard_db, shard_dir, shard_source
from tasks.fleet.split import split_source
from tasks.step import get_logger

DEFAULT_JOBS = 2


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("relance: error:")]
    line = errors[-1] if errors else (lines[-1] if lines else "no output")
    return line.removeprefix("relance: error: ")[:300]


def run_shards(commands: dict[int, list[str]], root: Path, label: str, jobs: int = DEFAULT_JOBS) -> dict:
    """Run each shard's command in a local process, `jobs` at a time; FleetError (one line) when
    one or more failed, after every started one has ended. Returns {K: seconds}."""
    log = get_logger()

    def one(k: int) -> tuple[int, int, float, Path]:
        logs = shard_dir(root, k) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{label}.log"
        started = time.perf_counter()
        with path.open("w", encoding="utf-8") as out:
            rc = subprocess.call(commands[k], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return k, rc, time.perf_counter() - started, path

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, sorted(commands)))
    failed = [(k, p) for k, rc, _, p in results if rc != 0]
    for k, rc, seconds, _ in results:
        log.info("fleet: shard %d %s in %.1f s", k, "done" if rc == 0 else f"failed (exit {rc})", seconds)
    if failed:
        k, path = failed[0]
        more = f" (also failed: shard {', '.join(str(f[0]) for f in failed[1:])})" if len(failed) > 1 else ""
        raise FleetError(
            f"fleet {label}: shard {k} failed: {_last_line(path)} — log {path}{more}; the other shards' work "
            "is kept: run the same command again to complete the failed shard(s)"
        )
    return {k: round(s, 2) for k, _, s, _ in results}


def _cli() -> list[str]:
    return [sys.executable, "-m", "relance.cli"]


def _common(k: int, root: Path, policy: str | None, language: str) -> list[str]:
    args = ["--db", str(shard_db(root, k)), "--fleet-root", str(root), "--shard", str(k), "--language", language]
    return args + (["--policy", str(policy)] if policy else [])


def _finish(root: Path, as_of: date, shards: int, language: str, policy: str | None, metrics_target: str | None):
    from tasks.report import report
    from tasks.writeback import write_back

    t = time.perf_counter()
    db = merge_date(root, as_of, shards)
    merged = time.perf_counter() - t
    reported = report(str(db), as_of, str(root / "reports"), language, policy)
    written = write_back(str(db), as_of, metrics_target) if metrics_target else None
    return reported, written, round(merged, 2)


def fleet_run(
    as_of: date,
    source: str,
    root: str | Path,
    shards: int | None = None,
    jobs: int = DEFAULT_JOBS,
    policy: str | None = None,
    send: bool = False,
    auto_approve: bool = False,
    source_schema: str | None = None,
    metrics_target: str | None = None,
    language: str = "fr",
    allow_stale: bool = False,
) -> dict:
    """The nightly job of as_of as a fleet of local processes; returns its summary."""
    started = time.perf_counter()
    root = Path(root).resolve()
    n = configured_shards(root, shards)
    split = split_source(source, root, n, source_schema)
    pending = [k for k in range(n) if not shard_complete(root, k, as_of)]
    commands = {}
    for k in pending:
        cmd = _cli() + ["run", "--as-of", as_of.isoformat(), "--source", str(shard_source(root, k))]
        cmd += _common(k, root, policy, language) + ["--outbox", str(shard_dir(root, k) / "outbox")]
        cmd += ["--send"] if send else []
        cmd += ["--auto-approve"] if auto_approve else []
        cmd += ["--allow-stale"] if allow_stale else []
        commands[k] = cmd
    timings = run_shards(commands, root, f"run-{as_of.isoformat()}", jobs)
    t = time.perf_counter()
    reported, written, merge_seconds = _finish(root, as_of, n, language, policy, metrics_target)
    return {
        "as_of": as_of.isoformat(),
        "root": str(root),
        "shards": n,
        "split": split,
        "ran": pending,
        "skipped": [k for k in range(n) if k not in pending],
        "shard_seconds": timings,
        "db": str(fleet_db(root)),
        "report": reported,
        "write_back": written,
        "merge_seconds": merge_seconds,
        "merge_report_seconds": round(time.perf_counter() - t, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def fleet_backfill(
    start: date,
    end: date,
    source: str,
    root: str | Path,
    shards: int | None = None,
    jobs: int = DEFAULT_JOBS,
    policy: str | None = None,
    source_schema: str | None = None,
    metrics_target: str | None = None,
    language: str = "fr",
) -> dict:
    """A backfill of start … end as a fleet: each shard replays its dates, then every date is merged."""
    started = time.perf_counter()
    if end < start:
        raise FleetError(f"backfill end {end} is before start {start}")
    root = Path(root).resolve()
    n = configured_shards(root, shards)
    split = split_source(source, root, n, source_schema)
    days = [start + timedelta(i) for i in range((end - start).days + 1)]
    pending = [k for k in range(n) if not all(shard_complete(root, k, d) for d in days)]
    commands = {}
    for k in pending:
        cmd = _cli() + ["backfill", "--start", start.isoformat(), "--end", end.isoformat()]
        cmd += ["--source", str(shard_source(root, k))] + _common(k, root, policy, language)
        commands[k] = cmd
    timings = run_shards(commands, root, f"backfill-{start.isoformat()}-{end.isoformat()}", jobs)
    t = time.perf_counter()
    for d in days[:-1]:
        merge_date(root, d, n)
    merged_before = time.perf_counter() - t
    reported, written, merge_seconds = _finish(root, end, n, language, policy, metrics_target)
    merge_seconds = round(merged_before + merge_seconds, 2)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "root": str(root),
        "shards": n,
        "split": split,
        "ran": pending,
        "skipped": [k for k in range(n) if k not in pending],
        "shard_seconds": timings,
        "db": str(fleet_db(root)),
        "report": reported,
        "write_back": written,
        "merge_seconds": merge_seconds,
        "merge_report_seconds": round(time.perf_counter() - t, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
