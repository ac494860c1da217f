"""Ledger scenarios for dispatch tests: customers and invoices through the real ingest and aging,
then the dunning_actions and deliveries rows the escalation ladder would plan.

    db = build(tmp_path, customers=[...], invoices=[...], as_of=date(2026, 3, 16), actions=[
        action("A1", "C1", "reminder_2", ["I1", "I2"], deliveries=[("D1", "email"), ("D2", "letter")]),
    ])
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from tests.conftest import write_source

STAGE_RANK = {
    "preventive": 1,
    "due": 2,
    "call_1": 3,
    "reminder_2": 4,
    "call_2": 5,
    "formal_notice": 6,
    "amicable": 7,
    "litigation": 8,
}


def customer(cid: str, name: str | None = None, **kw) -> dict:
    row = {
        "customer_id": cid,
        "name": name or f"Client {cid}",
        "email": f"{cid.lower()}@client.example",
        "phone": "+33639980001",
        "street": "12 rue des Lilas",
        "postal_code": "69003",
        "city": "Lyon",
        "country": "FR",
        "language": "fr",
        "segment": "b2b",
        "collector": "Julie",
    }
    row.update(kw)
    return row


def invoice(iid: str, cid: str, issue: str, due: str, amount: str, **kw) -> dict:
    row = {"invoice_id": iid, "customer_id": cid, "issue_date": issue, "due_date": due, "amount": amount}
    row.update(kw)
    return row


def action(
    action_id: str,
    customer_id: str,
    stage: str,
    invoice_ids: list[str],
    *,
    deliveries: list[tuple],
    as_of: date | None = None,
    currency: str = "EUR",
    charges: dict | None = None,
    status: str | None = None,
) -> dict:
    """deliveries: (delivery_id, channel[, status])."""
    return {
        "action_id": action_id,
        "customer_id": customer_id,
        "stage": stage,
        "invoice_ids": invoice_ids,
        "deliveries": deliveries,
        "as_of": as_of,
        "currency": currency,
        "charges": charges,
        "status": status,
    }


def ingest_and_age(folder: Path, db: Path, as_of: date) -> None:
    from tasks.age import age
    from tasks.ingest import ingest

    ingest(str(folder), str(db), as_of)
    age(str(db), as_of)


def build(
    tmp_path: Path,
    *,
    customers: list[dict],
    invoices: list[dict],
    as_of: date,
    actions: list[dict],
    payments: list[dict] | None = None,
    with_charges_table: bool = False,
    name: str = "r",
) -> Path:
    src = write_source(tmp_path / f"{name}-src", customers=customers, invoices=invoices, payments=payments or [])
    db = tmp_path / f"{name}.duckdb"
    dates = sorted({a["as_of"] or as_of for a in actions} | {as_of})
    for d in dates:
        ingest_and_age(src, db, d)
    add_actions(db, actions, as_of, with_charges_table=with_charges_table)
    return db


def add_actions(db: Path, actions: list[dict], as_of: date, *, with_charges_table: bool = False) -> None:
    now = datetime(2026, 1, 1, 0, 0)
    with duckdb.connect(str(db)) as con:
        if not with_charges_table:
            con.execute("drop table if exists action_charge_periods")
            con.execute("drop table if exists action_charges")
        for a in actions:
            d = a["as_of"] or as_of
            rows = con.execute(
                "select invoice_id, open_amount, days_past_due from invoice_snapshot where as_of = ? and list_contains(?, invoice_id)",
                [d, a["invoice_ids"]],
            ).fetchall()
            amount = sum((r[1] for r in rows), Decimal("0.00"))
            ch = a["charges"]
            interest = indemnity = total = None
            if ch is not None:
                per = ch.get("per_invoice") or {}
                interest = (
                    sum((Decimal(v[0]) for v in per.values()), Decimal("0.00"))
                    if per
                    else Decimal(ch.get("interest", "0"))
                )
                indemnity = (
                    sum((Decimal(v[1]) for v in per.values()), Decimal("0.00"))
                    if per
                    else Decimal(ch.get("indemnity", "0"))
                )
                total = interest + (indemnity if a["currency"] == "EUR" else Decimal("0.00"))
                if with_charges_table:
                    for inv, (i_amt, ind_amt) in per.items():
                        due, open_amount = con.execute(
                            "select due_date, open_amount from invoice_snapshot where as_of = ? and invoice_id = ?",
                            [d, inv],
                        ).fetchone()
                        con.execute(
                            """insert into action_charges (action_id, invoice_id, customer_id, currency, due_date, open_amount,
                               days_late, interest_amount, indemnity_amount, indemnity_currency)
                               values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'EUR')""",
                            [
                                a["action_id"],
                                inv,
                                a["customer_id"],
                                a["currency"],
                                due,
                                open_amount,
                                (d - due).days,
                                Decimal(i_amt),
                                Decimal(ind_amt),
                            ],
                        )
            statuses = {x[2] if len(x) > 2 else "planned" for x in a["deliveries"]}
            action_status = a["status"] or ("pending_approval" if statuses == {"pending_approval"} else "planned")
            con.execute(
                """insert into dunning_actions (action_id, as_of, customer_id, currency, episode_id, stage, stage_rank,
                   driving_invoice_id, amount_due, invoice_ids, status, mode, interest_amount, indemnity_amount,
                   charges_total, indemnity_currency, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'live', ?, ?, ?, ?, ?)""",
                [
                    a["action_id"],
                    d,
                    a["customer_id"],
                    a["currency"],
                    f"E-{a['customer_id']}",
                    a["stage"],
                    STAGE_RANK.get(a["stage"], 9),
                    a["invoice_ids"][0] if a["invoice_ids"] else None,
                    amount,
                    a["invoice_ids"],
                    action_status,
                    interest,
                    indemnity,
                    total,
                    "EUR" if ch is not None else None,
                    now,
                ],
            )
            for dl in a["deliveries"]:
                delivery_id, channel = dl[0], dl[1]
                status = dl[2] if len(dl) > 2 else "planned"
                con.execute(
                    "insert into deliveries (delivery_id, action_id, channel, status, attempts, created_at, updated_at) values (?, ?, ?, ?, 0, ?, ?)",
                    [delivery_id, a["action_id"], channel, status, now, now],
                )


def deliveries(db: Path) -> dict[str, dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("select * from deliveries order by delivery_id")
        cols = [c[0] for c in cur.description]
        return {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def events(db: Path, delivery_id: str) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(
            "select * from delivery_events where delivery_id = ? order by event_at, status", [delivery_id]
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def channels_config(tmp_path: Path, **sections) -> str:
    """A copy of templates/channels.yaml with some keys changed, e.g. email={"max_attempts": 3}."""
    import yaml

    from tasks.dispatch.config import DEFAULT_CHANNELS_CONFIG

    data = yaml.safe_load(DEFAULT_CHANNELS_CONFIG.read_text(encoding="utf-8"))
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path = tmp_path / f"channels-{abs(hash(repr(sorted(sections.items())))) % 10**8}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def pdf_text(path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


def pdf_positions(path, page: int = 0) -> list[tuple[str, float, float]]:
    """(text, x mm from the left edge, y mm from the top edge) of each text run of a page."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    p = reader.pages[page]
    height = float(p.mediabox.height)
    mm = 72 / 25.4
    out = []

    def visit(text, cm, tm, font_dict, font_size):
        if not text.strip():
            return
        x = cm[0] * tm[4] + cm[2] * tm[5] + cm[4]
        y = cm[1] * tm[4] + cm[3] * tm[5] + cm[5]
        out.append((text.strip(), x / mm, (height - y) / mm))

    p.extract_text(visitor_text=visit)
    return out
