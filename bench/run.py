"""`make bench`: how fast and how big relance's nightly run is, against a pandas baseline.

    .venv/bin/python -m bench.run [--sizes 10000,100000,300000] [--backfill-days 30] [--no-sendgrid]
                                  [--backfill365-customers 10000] [--no-backfill365] [--profile]

Sizes are numbers of customers of `relance sample-data` (about 10 invoices each: 10000 → ~100k
invoices, 100000 → ~1M, 300000 → ~3M). For each size: the sample (generated once, cached under
bench/.cache/), a short backfill (the ladder's state; cached), then, on a copy, the nightly run of
the next day timed step by step (outbox provider) in a child process whose max RSS is the peak
memory; the pandas baseline (bench/baseline_pandas.py) on the same data, checked to give the same
actions. For the largest size of at most 1M invoices (the headline), the night's emails are also
sent to the SendGrid-compatible fake on loopback (its own process). Then a 365-day backfill over a
~100k-invoice source (with its metrics per day). Prints the closing line and writes
bench/RESULTS.md. Never part of the test suite.

Dispatch alone (letters and emails per second on a big synthetic night): bench/dispatch.py,
`make bench-dispatch` (`python -m bench.dispatch --help`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
AS_OF = "2026-03-16"  # a Monday
SEED = 7


def child(mode: str, args: dict, log: Path, root: Path = ROOT) -> tuple[dict, float, float]:
    """Run bench.child MODE in its own process (of the checkout `root`, with its .venv; default this
    one, with this interpreter); returns (result, wall seconds, max RSS in MB). The result carries
    `cpu_s`: the CPU time of the process and of the workers it waited for (its PDF pool)."""
    python = sys.executable if root == ROOT else str(root / ".venv" / "bin" / "python")
    t = time.perf_counter()
    with open(log, "w") as out:
        p = subprocess.Popen(
            [python, "-m", "bench.child", mode, json.dumps(args)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )
        stdout = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if p.returncode != 0 or result is None:
        raise SystemExit(f"bench: {mode} failed (exit {p.returncode}); see {log}\n{stdout[-2000:]}")
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    return result, wall, usage.ru_maxrss / 1024


def source(customers: int) -> tuple[Path, int]:
    src = CACHE / f"src-{customers}"
    if not (src / "invoices.csv").exists():
        tmp = CACHE / f"src-{customers}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"bench: generating the sample, {customers} customers (cached in {src})", flush=True)
        subprocess.run(
            [
                str(Path(sys.executable).parent / "relance"),
                "sample-data",
                "--out",
                str(tmp),
                "--customers",
                str(customers),
                "--seed",
                str(SEED),
                "--as-of",
                AS_OF,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tmp.rename(src)
    with open(src / "invoices.csv", "rb") as f:
        invoices = sum(1 for _ in f) - 1
    return src, invoices


def standard_only_policy() -> Path:
    """The shipped policy with one ladder for every debtor (no `ladders:`, no `ladder_rules:`): the
    ladder relance had before issue 16, to compare the code's cost at the same work."""
    import yaml

    doc = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text(encoding="utf-8"))
    doc["ladders"], doc["ladder_rules"] = [], []
    path = CACHE / "policy-standard-only.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def prepared(customers: int, src: Path, days: int, policy: Path | None = None) -> Path:
    db = CACHE / f"prep-{customers}-bf{days}{'-' + policy.stem if policy else ''}.duckdb"
    tmp = Path(str(db) + ".tmp")
    while (
        not db.exists()
        and tmp.exists()
        and time.time() - max(p.stat().st_mtime for p in (tmp, Path(str(tmp) + ".wal")) if p.exists()) < 180
    ):
        print(f"bench: another bench is preparing {db.name}; waiting", flush=True)
        time.sleep(15)
    if not db.exists():
        for p in (tmp, Path(str(tmp) + ".wal")):
            p.unlink(missing_ok=True)
        work = CACHE / f"work-prep-{customers}"
        work.mkdir(parents=True, exist_ok=True)
        print(f"bench: the ladder's state: a {days}-day backfill at {customers} customers (cached in {db})", flush=True)
        r, wall, _ = child(
            "prepare",
            {
                "as_of": AS_OF,
                "backfill_days": days,
                "source": str(src),
                "db": str(tmp),
                "work": str(work),
                "policy": str(policy) if policy else None,
            },
            CACHE / f"prep-{customers}.log",
        )
        print(f"bench:   done in {wall:.0f} s, {r['actions']} simulated actions", flush=True)
        tmp.rename(db)
    return db


def fresh_copy(db: Path, work: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    target = work / "relance.duckdb"
    shutil.copyfile(db, target)
    return target


def machine() -> dict:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
        platform.processor(),
    )
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    import duckdb
    import pandas

    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
    }


TARGETS = {"nightly_s": 120.0, "ladder_vs_pandas": 10.0, "backfill365_s": 300.0, "peak_rss_mb": 4096.0}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="relance benchmark")
    p.add_argument(
        "--sizes", default="10000,100000,300000", help="customers per size (~10 invoices each), comma-separated"
    )
    p.add_argument("--backfill-days", type=int, default=30, help="the short backfill that gives the ladder its state")
    p.add_argument("--backfill365-customers", type=int, default=10000)
    p.add_argument("--backfill365-days", type=int, default=365)
    p.add_argument("--no-backfill365", action="store_true")
    p.add_argument("--no-sendgrid", action="store_true")
    p.add_argument("--profile", action="store_true", help="pyinstrument profiles into bench/.cache/profile-*.txt")
    p.add_argument(
        "--standard-only",
        action="store_true",
        help="the shipped policy without its ladders per segment and risk (one ladder for all, as before issue 16)",
    )
    args = p.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    policy = standard_only_policy() if args.standard_only else None
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = datetime.now(UTC)

    rows = []
    for customers in sizes:
        src, invoices = source(customers)
        prep = prepared(customers, src, args.backfill_days, policy)
        work = CACHE / f"work-{customers}"
        db = fresh_copy(prep, work)
        a = {
            "as_of": AS_OF,
            "source": str(src),
            "db": str(db),
            "work": str(work),
            "policy": str(policy) if policy else None,
        }
        if args.profile:
            a["profile"] = str(CACHE / f"profile-nightly-{customers}.txt")
        print(f"bench: nightly run at {invoices} invoices ({customers} customers)", flush=True)
        night, _, rss = child("nightly", a, work / "nightly.log")
        night.pop("profile", None)
        row = {"customers": customers, "invoices": invoices, **night, "peak_rss_mb": round(rss)}
        print(f"bench:   {json.dumps(row)}", flush=True)
        pa = {"as_of": AS_OF, "db": str(db)}
        if args.profile:
            pa["profile"] = str(CACHE / f"profile-pandas-{customers}.txt")
        pd_res, _, pd_rss = child("pandas", pa, work / "pandas.log")
        row.update(pd_res)
        row["pandas_peak_rss_mb"] = round(pd_rss)
        row["ladder_vs_pandas"] = round(pd_res["ladder_pandas_s"] / (night["age_s"] + night["ladder_s"]), 1)
        print(
            f"bench:   pandas {pd_res['ladder_pandas_s']} s, same actions: {pd_res['same_actions']} "
            f"({pd_res['pandas_actions']} vs {pd_res['sql_actions']})",
            flush=True,
        )
        rows.append(row)

    headline = max((r for r in rows if r["invoices"] <= 1_100_000), key=lambda r: r["invoices"], default=rows[-1])
    sendgrid = None
    if not args.no_sendgrid:
        customers = headline["customers"]
        work = CACHE / f"work-{customers}-send"
        db = fresh_copy(prepared(customers, CACHE / f"src-{customers}", args.backfill_days), work)
        print(
            f"bench: the night's emails to the SendGrid-compatible fake ({headline['invoices']} invoices)", flush=True
        )
        sendgrid, _, _ = child(
            "sendgrid",
            {"as_of": AS_OF, "source": str(CACHE / f"src-{customers}"), "db": str(db), "work": str(work)},
            work / "sendgrid.log",
        )
        print(f"bench:   {json.dumps(sendgrid)}", flush=True)

    bf = None
    if not args.no_backfill365:
        src, invoices = source(args.backfill365_customers)
        work = CACHE / "work-backfill365"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        ba = {
            "as_of": AS_OF,
            "days": args.backfill365_days,
            "source": str(src),
            "db": str(work / "relance.duckdb"),
            "work": str(work),
        }
        if args.profile:
            ba["profile"] = str(CACHE / "profile-backfill365.txt")
        print(f"bench: {args.backfill365_days}-day backfill over {invoices} invoices", flush=True)
        bf, _, bf_rss = child("backfill", ba, work / "backfill.log")
        bf.update(invoices=invoices, peak_rss_mb=round(bf_rss))
        print(f"bench:   {json.dumps(bf)}", flush=True)

    h = headline
    closing = (
        f"bench: invoices={h['invoices']} customers={h['customers']} nightly_s={h['nightly_s']:.1f} "
        f"ingest_s={h['ingest_s']:.1f} age_s={h['age_s']:.1f} ladder_s={h['ladder_s']:.1f} "
        f"dispatch_s={h['dispatch_s']:.1f} metrics_s={h['metrics_s']:.1f} report_s={h['report_s']:.1f} "
        f"ladder_pandas_s={h['ladder_pandas_s']:.1f} ladder_vs_pandas={h['ladder_vs_pandas']:.1f} "
        f"backfill365_invoices={bf['invoices'] if bf else 0} backfill365_s={bf['backfill_s'] if bf else 0:.1f} "
        f"peak_rss_mb={h['peak_rss_mb']}"
    )
    results = {
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "sizes": rows,
        "sendgrid": sendgrid,
        "backfill365": bf,
        "closing": closing,
    }
    (CACHE / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_results(results)
    print(closing, flush=True)
    return results


def _ok(value, target, higher_is_better=False) -> str:
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "**missed**"


def write_results(r: dict) -> None:
    m = r["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`bench/run.py`) on {r['started']} (UTC).",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB memory; Python {m['python']}, "
        f"DuckDB {m['duckdb']}, pandas {m['pandas']}.",
        "",
        f"Nightly run of {AS_OF} on the embedded DuckDB with the outbox provider, after a short backfill "
        "(the ladder's state); each step timed; peak RSS is the max RSS of the process that ran the night. "
        "The pandas baseline (bench/baseline_pandas.py: the contract's aging and ladder decision rules for one date, "
        "given the state before it) runs on the same data; `ladder_vs_pandas` = pandas (aging + decisions, "
        "in-memory, data already loaded) ÷ SQL (age + ladder steps, which also write their tables).",
        "",
        "| invoices | customers | nightly s | ingest | age | ladder | dispatch | metrics | report | actions | "
        "pandas s | ladder vs pandas | same actions | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in r["sizes"]:
        lines.append(
            f"| {s['invoices']:,} | {s['customers']:,} | {s['nightly_s']:.1f} | {s['ingest_s']:.1f} | {s['age_s']:.1f} | "
            f"{s['ladder_s']:.1f} | {s['dispatch_s']:.1f} | {s['metrics_s']:.1f} | {s['report_s']:.1f} | {s['actions']} | "
            f"{s['ladder_pandas_s']:.1f} | {s['ladder_vs_pandas']:.1f}× | {'yes' if s['same_actions'] else '**no**'} | "
            f"{s['peak_rss_mb']} |"
        )
    lines += [
        "",
        "Aging and ladder, SQL steps (as run by the nightly: open the warehouse, build, write the tables, "
        "commit) against the pandas baseline (in memory, inputs already loaded; loading them from the "
        "warehouse is shown apart):",
        "",
        "| invoices | SQL age s | pandas aging s | SQL ladder s | pandas decisions s | pandas load s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["sizes"]:
        lines.append(
            f"| {s['invoices']:,} | {s['age_s']:.2f} | {s.get('pandas_age_s', 0):.2f} | {s['ladder_s']:.2f} | "
            f"{s.get('pandas_decide_s', 0):.2f} | {s.get('pandas_load_s', 0):.2f} |"
        )
    if len(r["sizes"]) > 1:
        lines += [""]
        for x, y in zip(r["sizes"], r["sizes"][1:]):
            lines.append(
                f"Growth from {x['invoices']:,} to {y['invoices']:,} invoices (×{y['invoices'] / x['invoices']:.1f}): "
                f"nightly ×{y['nightly_s'] / x['nightly_s']:.1f}, deliveries ×"
                f"{sum(y['deliveries'].values()) / max(1, sum(x['deliveries'].values())):.1f}, "
                f"peak RSS ×{y['peak_rss_mb'] / x['peak_rss_mb']:.1f}.  "
            )
    sg = r.get("sendgrid")
    if sg:
        lines += [
            "",
            f"Email dispatch of that night to the SendGrid-compatible fake on loopback (own process): "
            f"{sg['emails']} emails in {sg['sendgrid_s']:.1f} s ({sg['emails_per_s']}/s); statuses "
            f"{sg['email_statuses']}; the server accepted {sg['server_accepted']} messages, "
            f"{sg['server_distinct']} distinct delivery ids.",
        ]
    bf = r.get("backfill365")
    if bf:
        lines += [
            "",
            f"{bf['days']}-day backfill over {bf['invoices']:,} invoices (aging, ladder and metrics per day): "
            f"{bf['backfill_s']:.1f} s (aging {bf['aging_s']:.1f} s, ladder {bf['ladder_s']:.1f} s, "
            f"metrics {bf['metrics_s']:.1f} s), {bf['actions']} simulated actions, peak RSS {bf['peak_rss_mb']} MB.",
        ]
    h = next((s for s in r["sizes"] if s["invoices"] >= 900_000), None)
    lines += ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    lines.append(
        f"| nightly ≤ 120 s at 1M invoices | {h['nightly_s']:.1f} s | {_ok(h['nightly_s'], 120)} |"
        if h
        else "| nightly ≤ 120 s at 1M invoices | (1M not run) | not measured |"
    )
    for s in r["sizes"]:
        lines.append(
            f"| SQL ladder ≥ 10× pandas | {s['ladder_vs_pandas']:.1f}× at {s['invoices']:,} | "
            f"{_ok(s['ladder_vs_pandas'], 10, True)} |"
        )
    lines.append(
        f"| 365-day backfill over 100k ≤ 300 s | {bf['backfill_s']:.1f} s | {_ok(bf['backfill_s'], 300)} |"
        if bf
        else "| 365-day backfill ≤ 300 s | not run | not measured |"
    )
    peak = max(s["peak_rss_mb"] for s in r["sizes"])
    lines.append(f"| peak RSS ≤ 4 GB | {peak} MB | {_ok(peak, 4096)} |")
    lines += ["", "Closing line:", "", "```", r["closing"], "```", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8")]
    (HERE / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
