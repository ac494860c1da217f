"""Approval of the actions of stages with `requires_approval` (the formal notice by default), and of
the statements of late-payment charges (late_charge_statements, tasks/late_charges.py) alike.

The ladder plans their deliveries as `pending_approval`; nothing is sent until a person decides:
* approve → the action's status becomes `approved` (decided_by, decided_at, decision_reason,
  decided_run_id: the audited run that recorded the decision, tasks/audit.py) and its deliveries
  `planned`: the next dispatch sends them;
* reject  → the action becomes `rejected`, its deliveries `skipped`, with who rejected and why
  (decision_reason, and last_error "rejected by …: why" on each delivery).
`relance approve --db PATH --as-of D (--all | --action ID… | --reject ID… --reason R)`;
`dispatch(..., auto_approve=True)` approves everything pending as "auto-approve".
Scope: actions dated up to D whose deliveries are still pending_approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from relance.core.errors import UserError
from tasks import warehouse
from tasks.dispatch import ledger


def pending_actions(con, as_of: date) -> dict[str, dict]:
    """The actions waiting for approval by action_id, oldest first (sql/dispatch/pending_approval.sql):
    their amounts, charges, delivery_ids, channels and number of deliveries."""
    return {r["action_id"]: r for r in ledger.query(con, "pending_approval", {"as_of": as_of})}


def _decide(
    con, action_ids: list[str], decision: str, by: str, reason: str | None, now: datetime, run_id: str | None
) -> int:
    """decision 'approved' or 'rejected'; returns the number of deliveries moved. Caller holds the transaction."""
    if not action_ids:
        return 0
    con.execute(
        """
        update dunning_actions set status = $status, decided_by = $by, decided_at = $now, decision_reason = $reason,
                                   decided_run_id = $run_id
        where action_id in (select unnest($ids::varchar[]))
        """,
        {"status": decision, "by": by, "now": now, "reason": reason, "ids": action_ids, "run_id": run_id},
    )
    con.execute(  # a statement of late-payment charges is decided the same way (tasks/late_charges.py)
        """
        update late_charge_statements set status = $status, decided_by = $by, decided_at = $now,
                                          decision_reason = $reason, decided_run_id = $run_id
        where statement_id in (select unnest($ids::varchar[]))
        """,
        {"status": decision, "by": by, "now": now, "reason": reason, "ids": action_ids, "run_id": run_id},
    )
    new_status = "planned" if decision == "approved" else "skipped"
    detail = (f"approved by {by}" if decision == "approved" else f"rejected by {by}") + (
        f": {reason}" if reason else ""
    )
    moved = [
        r[0]
        for r in con.execute(
            f"""
            update deliveries set status = $new, updated_at = $now
                {", last_error = $detail" if decision == "rejected" else ""}
            where action_id in (select unnest($ids::varchar[])) and status = 'pending_approval'
            returning delivery_id
            """,
            {
                "new": new_status,
                "now": now,
                "ids": action_ids,
                **({"detail": detail} if decision == "rejected" else {}),
            },
        ).fetchall()
    ]
    if moved:
        con.execute(
            """
            insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail,
                                         run_id)
            select delivery_id, $now, status, 'pending_approval', channel, provider, $actor, $detail, $run_id
            from deliveries where delivery_id in (select unnest($ids::varchar[]))
            """,
            {"now": now, "actor": f"approve:{by}", "detail": detail, "ids": moved, "run_id": run_id},
        )
    return len(moved)


def decide(
    con,
    as_of: date,
    *,
    approve_all: bool,
    action_ids: Sequence[str],
    reject_ids: Sequence[str],
    by: str,
    reason: str | None,
    now: datetime | None = None,
    run_id: str | None = None,
) -> dict:
    """The approval on an open connection (used by approve() and by dispatch's auto-approve).
    run_id: the run recording the decision (default: the audited run this runs in)."""
    from tasks.audit import current_run_id

    now = ledger.naive_utc(now)
    run_id = run_id or current_run_id()
    pending = pending_actions(con, as_of)
    action_ids, reject_ids = list(dict.fromkeys(action_ids)), list(dict.fromkeys(reject_ids))
    both = sorted(set(action_ids) & set(reject_ids))
    if both:
        raise UserError(f"approve: {', '.join(both)} both approved and rejected; nothing changed")
    unknown = [i for i in action_ids + reject_ids if i not in pending]
    if unknown:
        states = dict(
            con.execute(
                "select action_id, status from dunning_actions where action_id in (select unnest($ids::varchar[]))",
                {"ids": unknown},
            ).fetchall()
        )
        lines = [
            f"{i}: " + (f"is {states[i]}, not waiting for approval" if i in states else "no such action")
            for i in unknown
        ]
        raise UserError("approve: nothing changed —\n  " + "\n  ".join(lines))
    if reject_ids and not reason:
        raise UserError("approve: say why the actions are rejected (--reason)")
    to_approve = [i for i in pending if i not in set(reject_ids)] if approve_all else action_ids
    with warehouse.transaction(con):
        rejected = _decide(con, reject_ids, "rejected", by, reason, now, run_id)
        approved = _decide(con, to_approve, "approved", by, reason if approve_all or action_ids else None, now, run_id)
    return {
        "approved": to_approve,
        "rejected": reject_ids,
        "deliveries_planned": approved,
        "deliveries_skipped": rejected,
        "still_pending": [i for i in pending if i not in set(to_approve) | set(reject_ids)],
        "by": by,
        "run_id": run_id,
    }


def approve(
    db: str,
    as_of: date,
    approve_all: bool = False,
    action_ids: Sequence[str] = (),
    reject_ids: Sequence[str] = (),
    by: str = "",
    reason: str | None = None,
    now: datetime | None = None,
) -> dict:
    """`relance approve`: approve all, or the named actions, and/or reject the named ones (with a reason).
    One audited run (kind approve, actor `by`): the decision names it."""
    from tasks import audit

    if not by:
        raise UserError("approve: say who decides (--by NAME)")
    if not approve_all and not action_ids and not reject_ids:
        raise UserError("approve: choose --all, --action ID… or --reject ID…")
    with warehouse.open_db(db) as con:
        ledger.ensure_tables(con)
        with audit.audited(db, "approve", as_of, con=con, actor=by) as run:
            return run.step(
                "approve",
                decide(
                    con,
                    as_of,
                    approve_all=approve_all,
                    action_ids=action_ids,
                    reject_ids=reject_ids,
                    by=by,
                    reason=reason,
                    now=now,
                    run_id=run.run_id,
                ),
            )
