"""Measure dispatch: render and write a big night into the outbox, letters per second, emails per
second to a SendGrid-compatible server on loopback (run in its own process). Part of the benchmark
(bench/), not of the product: `make bench-dispatch` runs it with its defaults.

    .venv/bin/python -m bench.dispatch --customers 20000 --deliveries 20000 --emails 5000 --out /tmp/relance-bench

The deliveries are synthetic (a channel mix close to the default ladder's: mostly email, then
letters, calls, SMS, formal notices, a few handoffs) over the open invoices of a sample source
(relance sample-data), so that only dispatch is measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

#: channel → (stage, share of deliveries)
MIX = {
    "email": ("reminder_2", 0.55),
    "letter": ("reminder_2", 0.15),
    "sms": ("reminder_2", 0.10),
    "phone": ("call_1", 0.10),
    "registered_letter": ("formal_notice", 0.07),
    "visit": ("amicable", 0.02),
    "handoff": ("litigation", 0.01),
}


def _prepare(out: Path, customers: int, as_of: date) -> Path:
    from relance.sample_data import generate
    from tasks.age import age
    from tasks.ingest import ingest

    src = out / "source"
    db = out / "bench.duckdb"
    if not db.exists():
        generate(src, customers=customers, seed=7, as_of=as_of)
        ingest(str(src), str(db), as_of)
        age(str(db), as_of)
    return db


def _plan(db: Path, as_of: date, deliveries: int, channels: dict[str, tuple[str, float]], tag: str) -> dict[str, int]:
    """Insert actions (one per unit and channel) and planned deliveries, up to `deliveries` in all;
    the charged stages (policies/default.yaml `charged`) state charges."""
    import duckdb

    from relance.core.policy import default_policy

    pol = default_policy()

    with duckdb.connect(str(db)) as con:
        units = con.execute(
            """
            select s.customer_id, s.currency, list(s.invoice_id order by s.due_date) as ids, sum(s.open_amount) as amount
            from invoice_snapshot s join stg_customers c using (customer_id)
            where s.as_of = ? and s.days_past_due > 0 and not s.held and c.street is not null
              and c.email is not null and c.phone is not null
            group by all order by s.customer_id, s.currency
            """,
            [as_of],
        ).fetchall()
        if not units:
            raise SystemExit("no overdue units in the sample: use more customers")
        now = datetime.now(UTC).replace(tzinfo=None)
        counts: dict[str, int] = {}
        actions, rows = [], []
        total_share = sum(share for _, share in channels.values())
        for channel, (stage, share) in channels.items():
            n = int(round(deliveries * share / total_share))
            counts[channel] = n
            for i in range(n):
                cust, cur, ids, amount = units[i % len(units)]
                action_id = f"{tag}|{cust}|{cur}|{channel}|{i // len(units)}"
                charged = pol.stage(stage).charged
                actions.append(
                    (
                        action_id,
                        as_of,
                        cust,
                        cur,
                        f"{tag}|{cust}|{cur}",
                        stage,
                        4,
                        ids[0],
                        amount,
                        ids,
                        "planned",
                        "live",
                        "0.00" if not charged else "12.34",
                        None if not charged else str(40 * len(ids)),
                        None if not charged else str(12.34 + 40 * len(ids)),
                        now,
                    )
                )
                rows.append((f"{action_id}|{channel}", action_id, channel, "planned", 0, now, now))
        con.executemany(
            """insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank,
               driving_invoice_id, amount_due, invoice_ids, status, mode, interest_amount, indemnity_amount,
               charges_total, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            actions,
        )
        con.executemany(
            "insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return counts


def _timed_dispatch(**kw) -> tuple[dict, dict[str, float]]:
    import tasks.dispatch.main as d  # dispatch() calls the dispatch_batch of its own module

    per_channel: dict[str, float] = defaultdict(float)
    original = d.dispatch_batch

    def timed(*a, **k):
        out = original(*a, **k)
        per_channel[out["channel"]] += out["seconds"]
        return out

    d.dispatch_batch = timed
    try:
        summary = d.dispatch(**kw)
    finally:
        d.dispatch_batch = original
    return summary, dict(per_channel)


def _serve_sendgrid(conn, api_key: str) -> None:  # pragma: no cover - runs in a child process
    from tests.fakes.sendgrid_server import FakeSendGrid

    fake = FakeSendGrid(api_key=api_key).start()
    conn.send(fake.url)
    conn.recv()  # wait until told to stop
    conn.send(len(fake.accepted))
    fake.stop()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=20000)
    p.add_argument("--deliveries", type=int, default=20000)
    p.add_argument("--emails", type=int, default=5000, help="emails sent to the loopback SendGrid server")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", default="/tmp/relance-bench")
    args = p.parse_args(argv)

    from tasks.dispatch import dispatch

    out = Path(args.out)
    as_of = date(2026, 3, 16)
    t = time.perf_counter()
    db = _prepare(out, args.customers, as_of)
    prep = time.perf_counter() - t
    shutil.rmtree(out / "outbox", ignore_errors=True)
    tag = f"B{int(time.time())}"
    counts = _plan(db, as_of, args.deliveries, MIX, tag)
    t = time.perf_counter()
    summary, per_channel = _timed_dispatch(
        db=str(db),
        as_of=as_of,
        outbox=str(out / "outbox"),
        batch_size=args.batch_size,
        auto_approve=True,
        now=datetime(2026, 3, 16, 9, tzinfo=UTC),
    )
    outbox_seconds = time.perf_counter() - t
    report = {
        "source": f"{args.customers} customers, prepared in {prep:.1f} s",
        "outbox": {
            "deliveries": sum(counts.values()),
            "by_channel": counts,
            "seconds": round(outbox_seconds, 1),
            "per_second": round(sum(counts.values()) / outbox_seconds, 1),
            "channel_seconds": {c: round(s, 1) for c, s in per_channel.items()},
            "channel_per_second": {c: round(counts[c] / s, 1) for c, s in per_channel.items() if s},
            "totals": summary["totals"],
        },
    }
    letters = counts.get("letter", 0) + counts.get("registered_letter", 0)
    letter_seconds = per_channel.get("letter", 0) + per_channel.get("registered_letter", 0)
    if letter_seconds:
        report["letters_per_second"] = round(letters / letter_seconds, 1)

    if args.emails:
        parent, child = multiprocessing.get_context("spawn").Pipe()
        key = "SG.bench-key"
        proc = multiprocessing.get_context("spawn").Process(target=_serve_sendgrid, args=(child, key), daemon=True)
        proc.start()
        url = parent.recv()
        os.environ["RELANCE_SENDGRID_HOST"], os.environ["SENDGRID_API_KEY"] = url, key
        cfg = out / "channels-bench.yaml"
        import yaml

        from tasks.dispatch.config import DEFAULT_CHANNELS_CONFIG

        data = yaml.safe_load(DEFAULT_CHANNELS_CONFIG.read_text(encoding="utf-8"))
        data["email"]["concurrency"] = args.concurrency
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        _plan(db, as_of, args.emails, {"email": ("reminder_2", 1.0)}, tag + "S")
        t = time.perf_counter()
        sent = dispatch(
            str(db),
            as_of,
            str(out / "outbox"),
            send=True,
            batch_size=args.batch_size,
            now=datetime(2026, 3, 16, 9, tzinfo=UTC),
            channels_config=str(cfg),
        )
        seconds = time.perf_counter() - t
        parent.send("stop")
        accepted = parent.recv()
        proc.join(10)
        report["sendgrid"] = {
            "emails": args.emails,
            "accepted_by_server": accepted,
            "seconds": round(seconds, 1),
            "per_second": round(args.emails / seconds, 1),
            "concurrency": args.concurrency,
            "totals": sent["totals"],
        }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
