"""Two versions of relance, one nightly each in turn: `python -m bench.interleave BEFORE_DIR [--runs 3]`.

On a machine whose speed drifts from minute to minute, two series run one after the other compare
the drift, not the code. This runs the night of bench/child.py (`nightly`) alternately for the code
of BEFORE_DIR (a git worktree at an older commit, with its own .venv and its own prepared history
in BEFORE_DIR/bench/.cache/prep-<customers>-bf<days>.duckdb, made by its `python -m bench.run`) and
for this checkout, each on a fresh copy of its own prepared history and the same source, and prints
one JSON line per night (with the CPU time of the night's process and its PDF workers) and the means.
A commit older than dc99a74 needs, in its bench/child.py `prepare`, the two updates that turn the
replayed steps into real ones (else its night is every debtor's first step).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from bench.run import AS_OF, CACHE, ROOT, child


def night(root: Path, customers: int, days: int, source: Path) -> dict:
    cache = root / "bench" / ".cache"
    work = cache / "work-interleave"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(cache / f"prep-{customers}-bf{days}.duckdb", work / "relance.duckdb")
    args = {"as_of": AS_OF, "source": str(source), "db": str(work / "relance.duckdb"), "work": str(work)}
    result, _, rss = child("nightly", args, work / "nightly.log", root=root)
    result.pop("deliveries", None)
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"commit": commit.stdout.strip(), **result, "peak_rss_mb": round(rss)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="alternate nightly runs of two versions")
    p.add_argument("before", type=Path, help="the other version's checkout (own .venv, own bench/.cache prep)")
    p.add_argument("--runs", type=int, default=3, help="nights per side")
    p.add_argument("--customers", type=int, default=100000)
    p.add_argument("--backfill-days", type=int, default=30)
    a = p.parse_args(argv)
    source = CACHE / f"src-{a.customers}"
    sides = {"before": a.before.resolve(), "now": ROOT}
    nights: dict[str, list[dict]] = {"before": [], "now": []}
    for _ in range(a.runs):
        for side, root in sides.items():
            r = night(root, a.customers, a.backfill_days, source)
            nights[side].append(r)
            print(json.dumps({"side": side, **r}), flush=True)
    means = {side: sum(r["nightly_s"] for r in rs) / len(rs) for side, rs in nights.items()}
    cpu = {side: sum(r["cpu_s"] for r in rs) / len(rs) for side, rs in nights.items()}
    print(
        f"bench.interleave: nightly mean before {means['before']:.1f} s, now {means['now']:.1f} s "
        f"({(means['now'] / means['before'] - 1) * 100:+.1f} %); CPU {cpu['before']:.1f} s -> {cpu['now']:.1f} s "
        f"({(cpu['now'] / cpu['before'] - 1) * 100:+.1f} %)",
        flush=True,
    )


if __name__ == "__main__":
    main()
