"""Tiny sources for the ladder's tests: write CSV files in a folder, run dates, read the tables back."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import duckdb

from tasks.sources import COLUMNS

ADDRESS = {"street": "1 rue de la Paix", "postal_code": "75002", "city": "Paris"}


def customer(customer_id: str, **fields) -> dict:
    """A b2b customer in France with an email, a phone and a postal address, unless told otherwise."""
    row = {
        "customer_id": customer_id,
        "name": f"Client {customer_id}",
        "email": f"{customer_id.lower()}@example.com",
        "phone": "+33612345678",
        **ADDRESS,
        "country": "FR",
        "segment": "b2b",
        "dunning_block": "false",
    }
    row.update(fields)
    return row


def invoice(
    invoice_id: str,
    customer_id: str,
    due: str,
    amount: str = "100.00",
    *,
    issue: str | None = None,
    currency: str = "EUR",
    kind: str = "invoice",
) -> dict:
    due_d = date.fromisoformat(due)
    return {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "kind": kind,
        "issue_date": issue or (due_d - timedelta(days=30)).isoformat(),
        "due_date": due,
        "amount": amount,
        "currency": currency,
    }


def payment(
    payment_id: str, customer_id: str, paid: str, amount: str, *, invoice_id: str | None = None, currency: str = "EUR"
) -> dict:
    return {
        "payment_id": payment_id,
        "customer_id": customer_id,
        "invoice_id": invoice_id or "",
        "paid_date": paid,
        "amount": amount,
        "currency": currency,
    }


def hold(
    hold_id: str,
    customer_id: str,
    start: str,
    end: str | None = None,
    *,
    invoice_id: str | None = None,
    kind: str = "dispute",
) -> dict:
    return {
        "hold_id": hold_id,
        "customer_id": customer_id,
        "invoice_id": invoice_id or "",
        "kind": kind,
        "start_date": start,
        "end_date": end or "",
    }


def write_source(folder: Path, customers=(), invoices=(), payments=(), holds=()) -> str:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for entity, rows in (("customers", customers), ("invoices", invoices), ("payments", payments), ("holds", holds)):
        with (folder / f"{entity}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS[entity])
            w.writeheader()
            for r in rows:
                w.writerow({c: r.get(c, "") or "" for c in COLUMNS[entity]})
    return str(folder)


def days(start: str | date, end: str | date) -> list[date]:
    s = date.fromisoformat(start) if isinstance(start, str) else start
    e = date.fromisoformat(end) if isinstance(end, str) else end
    return [s + timedelta(n) for n in range((e - s).days + 1)]


def run_nightly(
    source: str, db: str, start: str | date, end: str | date | None = None, policy: str | None = None
) -> list[dict]:
    """The nightly run for each date from start to end (inclusive), one by one. The hand-written
    files do not move with the dates: allow_stale, or the freshness guard (tests/test_freshness.py)
    would stop every run after the first."""
    from flows.nightly import nightly_run

    return [
        nightly_run(as_of=d, source=source, db=db, policy=policy, allow_stale=True) for d in days(start, end or start)
    ]


def query(db: str, sql: str, params: dict | None = None) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def actions(db: str, customer_id: str | None = None) -> list[tuple]:
    """(as_of ISO, customer_id, currency, episode_id, stage, amount_due, invoice_ids, status) in date order."""
    rows = query(
        db,
        """
        select strftime(as_of, '%Y-%m-%d'), customer_id, currency, episode_id, stage, amount_due, invoice_ids, status
        from dunning_actions
        where $c is null or customer_id = $c
        order by as_of, customer_id, currency, stage_rank
        """,
        {"c": customer_id},
    )
    return [tuple(r) for r in rows]


def steps(db: str, customer_id: str | None = None, currency: str | None = None) -> list[tuple[str, str]]:
    """(date, stage) of the actions, in order."""
    return [(r[0], r[4]) for r in actions(db, customer_id) if currency is None or r[2] == currency]


def unit(db: str, as_of: str, customer_id: str, currency: str = "EUR") -> dict | None:
    con = duckdb.connect(db, read_only=True)
    try:
        cur = con.execute(
            "select * from unit_stage where as_of = $d and customer_id = $c and currency = $cur",
            {"d": date.fromisoformat(as_of), "c": customer_id, "cur": currency},
        )
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None
    finally:
        con.close()


def deliveries(db: str, action_id: str | None = None) -> list[tuple]:
    """(delivery_id, channel, status, fallback_from, last_error) ordered by id."""
    return [
        tuple(r)
        for r in query(
            db,
            """
        select delivery_id, channel, status, fallback_from, last_error from deliveries
        where $a is null or action_id = $a order by delivery_id
        """,
            {"a": action_id},
        )
    ]


def as_dates(dates) -> list[date]:
    return [date.fromisoformat(d) if isinstance(d, str) else d for d in dates]


def run_days(
    source: str | None, db: str, dates, policy: str | None = None, mode: str = "live", auto_approve: bool = False
) -> list[dict]:
    """What the nightly job does for each date, in order, on one connection: ingest the source
    once (it does not depend on the date; None = already loaded), then age and escalate each date
    (and approve what waits for approval, as `relance run --auto-approve` does)."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.age import age_on
    from tasks.escalate import Ladder
    from tasks.ingest import ingest

    dates = as_dates(dates)
    if source is not None:
        ingest(source, db, max(dates))
    pol = load_policy(policy)
    out = []
    with warehouse.open_db(db) as con:
        ladder = Ladder(con, pol, min(dates), max(dates))
        for d in dates:
            age_on(con, d, pol)
            out.append(ladder.run(d, mode))
            if auto_approve and mode == "live":
                from tasks.dispatch import ledger
                from tasks.dispatch.approval import decide

                ledger.ensure_tables(con)
                decide(con, d, approve_all=True, action_ids=(), reject_ids=(), by="auto-approve", reason=None)
    return out


def set_action_status(db: str, action_id: str, status: str) -> None:
    """What an approval does to an action (relance approve): approved or rejected."""
    con = duckdb.connect(db)
    try:
        n = con.execute(
            "update dunning_actions set status = $s where action_id = $a returning action_id",
            {"s": status, "a": action_id},
        ).fetchall()
        assert n, f"no action {action_id}"
    finally:
        con.close()


def table_rows(db: str, table: str) -> list[tuple]:
    """Every row of a table, sorted, for before/after comparisons."""
    return sorted(query(db, f"select * from {table}"), key=repr)


LADDER_TABLES = (
    "unit_stage",
    "dunning_episodes",
    "dunning_actions",
    "deliveries",
    "action_charges",
    "action_charge_periods",
    "invoice_snapshot",
    "aged_balance",
)


def send_action(db: str, action_id: str) -> None:
    """What an approval and the next dispatch do to a formal notice: approved, its messages sent
    (those not skipped or undeliverable)."""
    con = duckdb.connect(db)
    try:
        con.execute(
            "update dunning_actions set status = 'approved' where action_id = $a and status = 'pending_approval'",
            {"a": action_id},
        )
        n = con.execute(
            """update deliveries set status = 'sent', provider = 'outbox', attempts = 1, sent_at = now()
               where action_id = $a and status in ('pending_approval', 'planned') returning delivery_id""",
            {"a": action_id},
        ).fetchall()
        assert n, f"no message of {action_id} to send"
    finally:
        con.close()
