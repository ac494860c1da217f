"""record_outcome / resolve_dispute: the collector's form in the Prefect UI (issue 14).

The run form asks the same fields as `relance outcomes add` / `resolve`, typed (a list to pick the
kind, the reason and the resolution from, date pickers, an instalment table), and the flow records
through the same rule set (tasks/outcomes.py): a bad field fails the run with the reasons, nothing
written. It holds the database's concurrency slot, so it waits for a nightly run in progress.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from prefect import flow
from pydantic import BaseModel, Field

from tasks import outcomes
from tasks.locking import exclusive_db
from tasks.step import get_logger

Kind = Literal["reached", "no_answer", "wrong_number", "promise", "dispute", "plan", "paid_claimed", "refused"]
Reason = Literal["price", "quantity", "quality", "not_received", "already_paid", "other"]
Resolution = Literal["credit_note_expected", "rejected", "paid"]


class Instalment(BaseModel):
    due_date: date = Field(description="The instalment's date")
    amount: Decimal = Field(description="Its amount, e.g. 500.00", gt=0, decimal_places=2)


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


@flow(name="record_outcome", log_prints=True)
def record_outcome(
    customer_id: str,
    kind: Kind,
    db: str = ".relance/relance.duckdb",
    currency: str | None = None,
    amount: Decimal | None = None,
    promised_date: date | None = None,
    invoices: list[str] = [],  # noqa: B006 (a Prefect parameter's default, never mutated)
    instalments: list[Instalment] = [],  # noqa: B006
    reason: Reason | None = None,
    note: str | None = None,
    recorded_by: str | None = None,
    said_on: date | None = None,
    policy: str | None = None,
) -> dict:
    """Record what the debtor said. promise: amount and promised_date; plan: instalments; dispute:
    invoices and reason; said_on: when it was said (default today)."""
    fields = {
        "customer": customer_id,
        "kind": kind,
        "currency": currency,
        "amount": _text(amount),
        "date": _text(promised_date),
        "invoices": ",".join(invoices) or None,
        "instalments": ",".join(f"{i.due_date.isoformat()}:{i.amount}" for i in instalments) or None,
        "reason": reason,
        "note": note,
        "by": recorded_by or "prefect-ui",
        "on": _text(said_on),
    }
    with exclusive_db(db):
        res = outcomes.add(db, fields, policy=policy, source="prefect")
    get_logger().info(
        "outcome %s (%s) for %s: %s",
        res["outcome_id"],
        kind,
        customer_id,
        "recorded" if res["recorded"] else "already recorded",
    )
    return {k: str(v) if v is not None else None for k, v in res.items()}


@flow(name="resolve_dispute", log_prints=True)
def resolve_dispute(
    resolution: Resolution,
    db: str = ".relance/relance.duckdb",
    dispute_id: str | None = None,
    customer_id: str | None = None,
    note: str | None = None,
    recorded_by: str | None = None,
    said_on: date | None = None,
    policy: str | None = None,
) -> dict:
    """Resolve a dispute (its outcome id, or the customer's only open dispute)."""
    with exclusive_db(db):
        res = outcomes.resolve(
            db,
            {
                "dispute": dispute_id,
                "customer": customer_id,
                "resolution": resolution,
                "note": note,
                "by": recorded_by or "prefect-ui",
                "on": _text(said_on),
            },
            policy=policy,
        )
    return {k: str(v) if v is not None else None for k, v in res.items()}
