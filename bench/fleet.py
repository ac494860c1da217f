"""The fleet against one database (issue 17): `python -m bench.fleet`, or `RELANCE_BENCH_FLEET=1 make bench`.

    .venv/bin/python -m bench.fleet [--customers 300000] [--shards 4] [--jobs 4] [--backfill-days 0]
                                    [--fleet-only] [--as-of 2026-03-16] [--out bench/FLEET.md]

On generated data (`relance sample-data`, about 10 invoices a customer: 300000 → ~3M invoices; cached
under bench/.cache/): a short backfill's state is not needed — both sides run the same night from
nothing (or, with --backfill-days B, a backfill of B days first, both sides):

* one database: `relance run` (outbox provider), wall time;
* the fleet: `relance fleet run --shards N --jobs J` — split, the shards (local processes, J at a
  time), merge and report, each timed (the summary's split / shard / merge seconds);
* one shard alone at 1/N of the data (the largest shard's time: what each of N machines would do);
* the overhead of the fleet against the single run: (split + merge) / single, the target < 15 % (the
  report is rendered by both sides; the fleet's wall time with N machines ≈ split + largest shard +
  merge + report);
* the check: the fleet's actions, aged balance and recovery_metrics equal the single database's.

Never part of the tests; the coordinator runs it at scale. Prints one JSON line and writes --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RELANCE = [sys.executable, "-m", "relance.cli"]


def _run(cmd: list[str], log: Path) -> float:
    t = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"bench.fleet: {' '.join(cmd[2:5])} … failed (exit {rc}); see {log}")
    return time.perf_counter() - t


def _equal(single: Path, fleet: Path, as_of: str) -> dict[str, bool]:
    import duckdb

    queries = {
        "dunning_actions": "select action_id, customer_id, stage, amount_due from dunning_actions order by all",
        "deliveries": "select delivery_id, status from deliveries order by all",
        "aged_balance": f"select * from aged_balance where as_of = '{as_of}' order by all",
        "recovery_metrics": f"select * from recovery_metrics where as_of = '{as_of}' order by all",
    }
    a, b = duckdb.connect(str(single), read_only=True), duckdb.connect(str(fleet), read_only=True)
    try:
        return {name: a.execute(q).fetchall() == b.execute(q).fetchall() for name, q in queries.items()}
    finally:
        a.close()
        b.close()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="relance fleet benchmark")
    p.add_argument("--customers", type=int, default=300_000)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--jobs", type=int, default=None, help="shards at a time (default: --shards)")
    p.add_argument("--backfill-days", type=int, default=0)
    p.add_argument("--as-of", default="2026-03-16")
    p.add_argument("--out", type=Path, default=HERE / "FLEET.md")
    p.add_argument(
        "--fleet-only",
        action="store_true",
        help="the fleet's backfill alone (no single-database side, no night): for a long backfill at scale",
    )
    args = p.parse_args(argv)
    jobs = args.jobs or args.shards
    work = CACHE / f"fleet-{args.customers}-{args.shards}"
    source = CACHE / f"sample-{args.customers}-fleet"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if not source.exists():
        _run(
            RELANCE + ["sample-data", "--out", str(source), "--customers", str(args.customers), "--as-of", args.as_of],
            work / "sample.log",
        )
    single, root = work / "single" / "relance.duckdb", work / "fleet"
    result: dict = {"customers": args.customers, "shards": args.shards, "jobs": jobs}
    if args.backfill_days:
        end = date.fromisoformat(args.as_of) - timedelta(days=1)
        start = (end - timedelta(days=args.backfill_days - 1)).isoformat()
        window = ["--start", start, "--end", end.isoformat(), "--source", str(source)]  # both sides' range
        if not args.fleet_only:
            result["single_backfill_s"] = _run(
                RELANCE + ["backfill", *window, "--db", str(single)],
                work / "single-backfill.log",
            )
        t = time.perf_counter()
        out = subprocess.run(
            RELANCE
            + [
                "fleet",
                "backfill",
                *window,
                "--root",
                str(root),
                "--shards",
                str(args.shards),
                "--jobs",
                str(jobs),
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        result["fleet_backfill_s"] = time.perf_counter() - t
        result["fleet_backfill"] = {k: v for k, v in json.loads(out.stdout).items() if k.endswith("seconds")}
        if args.fleet_only:
            return _write(args.out, result)
    result["single_s"] = _run(
        RELANCE + ["run", "--as-of", args.as_of, "--source", str(source), "--db", str(single)], work / "single.log"
    )
    t = time.perf_counter()
    out = subprocess.run(
        RELANCE
        + [
            "fleet",
            "run",
            "--as-of",
            args.as_of,
            "--source",
            str(source),
            "--root",
            str(root),
            "--shards",
            str(args.shards),
            "--jobs",
            str(jobs),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench.fleet: fleet run failed: {out.stderr[-2000:]}")
    summary = json.loads(out.stdout)
    result["fleet_s"] = time.perf_counter() - t
    result["split_s"] = summary["split"]["seconds"]
    result["shard_s"] = summary["shard_seconds"]
    result["largest_shard_s"] = max(summary["shard_seconds"].values())
    result["merge_s"] = summary["merge_seconds"]  # the merge alone (the report is rendered by both sides)
    result["merge_report_s"] = summary["merge_report_seconds"]
    result["overhead_pct"] = round(100 * (result["split_s"] + result["merge_s"]) / result["single_s"], 1)
    result["equal"] = _equal(single, root / "fleet.duckdb", args.as_of)
    return _write(args.out, result)


def _write(out: Path, result: dict) -> dict:
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    out.write_text(
        "# Fleet bench (bench/fleet.py)\n\n```json\n" + json.dumps(result, indent=2) + "\n```\n", encoding="utf-8"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
