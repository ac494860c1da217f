"""Where the time goes, per SQL model: `python -m bench.hotspots [--customers 10000] [--days 10]`.

Wraps tasks.warehouse.run_model (every model of aging, the ladder and the metrics goes through it)
to add up the seconds of each model, over a short backfill (replay: aging, ladder and metrics per
day) on a copy of the benchmark's cached database, then one nightly run of the day after. Prints the
models sorted by time, with their share. Run `make bench` first (it fills bench/.cache/).
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import defaultdict
from datetime import date, timedelta

from bench.run import AS_OF, CACHE


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, default=10000)
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--backfill-days", type=int, default=30)
    args = p.parse_args(argv)

    from tasks import warehouse

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    original = warehouse.run_model

    def timed(con, model, params=None):
        t = time.perf_counter()
        try:
            return original(con, model, params)
        finally:
            spent[model] += time.perf_counter() - t
            calls[model] += 1

    warehouse.run_model = timed
    prep = CACHE / f"prep-{args.customers}-bf{args.backfill_days}.duckdb"
    work = CACHE / f"work-hotspots-{args.customers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "relance.duckdb"
    shutil.copyfile(prep, db)

    from flows.backfill import replay

    as_of = date.fromisoformat(AS_OF)
    t = time.perf_counter()
    r = replay(str(db), as_of - timedelta(days=args.days - 1), as_of)
    total = time.perf_counter() - t
    print(
        f"replay of {args.days} days at {args.customers} customers: {total:.1f} s "
        f"(aging {r['seconds_aging']} s, ladder {r['seconds_ladder']} s, metrics {r['seconds_metrics']} s)"
    )
    modeled = sum(spent.values())
    print(f"{'model':50s} {'calls':>5s} {'seconds':>8s} {'share':>6s}")
    for model, s in sorted(spent.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{model:50s} {calls[model]:5d} {s:8.2f} {100 * s / total:5.1f}%")
    print(f"{'(all models)':50s} {'':5s} {modeled:8.2f} {100 * modeled / total:5.1f}%")
    return {"total": total, "models": dict(spent)}


if __name__ == "__main__":
    main()
