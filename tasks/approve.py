"""Approval in the Prefect UI: the night's formal notices wait for a person's decision.

Inside a nightly flow run without auto_approve, when actions wait for approval
(deliveries `pending_approval`), the run
1. renders a draft PDF of each letter waiting (tasks/dispatch/drafts.py: as it will be sent,
   marked "draft, not sent", under outbox/<as_of>/drafts/) and publishes a markdown artifact
   `relance-approvals` listing the actions — action, debtor id, invoices, sums and charges (ids
   and amounts only: no names, no addresses) — and the drafts to read;
2. pauses for typed input (`ApprovalInput`: approve all, or approve / reject by action id,
   with a reason and who decides) — the UI's "Resume" button shows the form;
3. records the decision with the same code as `relance approve` (tasks.dispatch.approval.decide),
   as an audited run of its own (kind approve, run_id `<flow run id>/approve`, actor the `by` of the
   form); the dispatch that follows sends what was approved.
If nobody answers within the timeout, the run goes on without a decision: the notices stay
`pending_approval` for the next run or `relance approve`. Outside a flow run (the CLI),
nothing pauses: `relance approve` is the way.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from prefect.input import RunInput
from pydantic import Field

from relance.core.errors import UserError
from relance.core.settings import get_settings
from tasks import warehouse
from tasks.dispatch.approval import pending_actions
from tasks.step import get_logger, in_flow_run

ARTIFACT_KEY = "relance-approvals"


class ApprovalInput(RunInput):
    """The decision on the formal notices waiting for approval."""

    approve_all: bool = Field(False, description="Approve every notice listed (except those rejected below)")
    approve: list[str] = Field(default_factory=list, description="Action ids to approve")
    reject: list[str] = Field(default_factory=list, description="Action ids to reject (a reason is required)")
    reason: str = Field("", description="Why (required to reject)")
    by: str = Field("", description="Who decides (your name or login)")


def pending_notices(db: str, as_of: date) -> list[dict]:
    """The actions waiting for approval, with their invoices, charges and pending deliveries."""
    with warehouse.open_db(db) as con:
        return list(pending_actions(con, as_of).values())


def _money(v, currency: str, locale: str) -> str:
    """An amount as finance reads it, in the creditor's language: "40,00 €", "1 234,56 £GB"."""
    if v is None:
        return "—"
    from relance.core.money import format_money

    return format_money(v, currency, locale)


def _charges(n: dict, locale: str) -> str:
    """Interest and indemnity: one sum in the unit's currency, the fixed indemnity added beside it
    when it is in another currency (the policy's indemnity_currency, EUR by default)."""
    if n["charges_total"] is None and n["interest"] is None and n["indemnity"] is None:
        return "—"
    cur, ind_cur = n["currency"], n.get("indemnity_currency") or n["currency"]
    text = _money(n["charges_total"] if n["charges_total"] is not None else n["interest"], cur, locale)
    if ind_cur != cur and n["indemnity"]:
        text += " + " + _money(n["indemnity"], ind_cur, locale)
    return text


def _creditor_locale() -> str:
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import LOCALES, language_of

    return LOCALES[language_of(load_channels_config().creditor.language)]


def approval_markdown(
    notices: list[dict],
    as_of: date,
    outbox: str,
    timeout_hours: float,
    drafts: list[dict] | None = None,
    locale: str | None = None,
) -> str:
    from collections import defaultdict
    from decimal import Decimal

    locale = locale or _creditor_locale()
    lines = [
        f"# Waiting for approval — {as_of}",
        "",
        f"{len(notices)} action(s): the formal notices, and every other step the policy sends only once a person "
        "approved it (a stage's `requires_approval`, a ladder's `letters_require_approval`, the statements of "
        "late-payment charges). Decide with **Resume** on this flow run (approve all, or approve / reject "
        f"by action id, with a reason), or from a shell: `relance approve --db … --as-of {as_of} --all | --action ID | "
        f"--reject ID --reason …`. Without an answer within {timeout_hours:g} h the run goes on and the notices "
        "stay pending for the next run.",
        "",
        "| action | date | stage | debtor | invoices | amount due | interest | indemnity | charges | deliveries |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    # totals per currency: amounts due and interest in the unit's currency, indemnities in theirs
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for n in notices:
        cur = n["currency"]
        ind_cur = n.get("indemnity_currency") or cur
        lines.append(
            f"| `{n['action_id']}` | {n['as_of']} | {n['stage']} | `{n['customer_id']}` | "
            f"{', '.join(n['invoice_ids'] or [])} | {_money(n['amount_due'], cur, locale)} | "
            f"{_money(n['interest'], cur, locale)} | {_money(n['indemnity'], ind_cur, locale)} | {_charges(n, locale)} | "
            f"{', '.join(f'{d} ({c})' for d, c in zip(n['delivery_ids'], n['channels']))} |"
        )
        totals[cur]["amount due"] += n["amount_due"] or 0
        totals[cur]["interest"] += n["interest"] or 0
        totals[ind_cur]["indemnity"] += n["indemnity"] or 0
    if notices:
        lines += [
            "",
            "Totals per currency (the fixed indemnity counts in its own currency):",
            "",
            "| currency | amount due | interest | indemnity | total claimed |",
            "|---|---|---|---|---|",
        ]
        for cur in sorted(totals):
            t = totals[cur]
            lines.append(
                f"| {cur} | {_money(t['amount due'], cur, locale)} | {_money(t['interest'], cur, locale)} | "
                f"{_money(t['indemnity'], cur, locale)} | "
                f"{_money(t['amount due'] + t['interest'] + t['indemnity'], cur, locale)} |"
            )
    drafted = {d["delivery_id"]: d["path"] for d in drafts or ()}
    letters = [
        (n["action_id"], d, c)
        for n in notices
        for d, c in zip(n["delivery_ids"], n["channels"])
        if c in ("letter", "registered_letter")
    ]
    if drafted:
        lines += ["", "Drafts of the letters, as they will be sent once approved (marked draft, not sent):", ""]
        lines += [f"- `{a}` {c}: `{drafted[d]}`" for a, d, c in letters if d in drafted]
    missing = [(a, d, c) for a, d, c in letters if d not in drafted]
    if missing:
        lines += [
            "",
            "No draft could be rendered for these letters (see the run's log); once approved and sent they will be at:",
            "",
        ]
        lines += [f"- `{a}` {c}: `{Path(outbox) / str(as_of) / c / (d + '.pdf')}`" for a, d, c in missing]
    return "\n".join(lines) + "\n"


def ask_for_approval(
    db: str, as_of: date, outbox: str, auto_approve: bool = False, timeout_hours: float = 6.0, policy: str | None = None
) -> dict:
    """Pause the flow run for the approval of pending formal notices (see the module docstring)."""
    if not in_flow_run() or auto_approve:
        return {"asked": False}
    log = get_logger()
    notices = pending_notices(db, as_of)
    if not notices:
        log.info("approval: nothing waits for approval")
        return {"asked": False, "pending": 0}
    from prefect.artifacts import create_markdown_artifact
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    ids = [n["action_id"] for n in notices]
    try:
        from tasks.dispatch.drafts import render_drafts

        drafts = render_drafts(db, as_of, outbox, policy=policy)
    except Exception as e:  # the drafts help the decision; their failure must not stop the asking
        log.error(
            "approval: drafts not rendered (%s: %s); the artifact lists the notices without them", type(e).__name__, e
        )
        drafts = []
    create_markdown_artifact(
        approval_markdown(notices, as_of, outbox, timeout_hours, drafts),
        key=ARTIFACT_KEY,
        description=f"{len(notices)} formal notice(s) waiting for approval, {as_of}",
    )
    log.info(
        "approval: %d action(s) wait for approval (%s); pausing for up to %g h",
        len(ids),
        ", ".join(ids[:20]),
        timeout_hours,
    )
    timeout = max(1, int(round(timeout_hours * 3600)))
    # a fresh pause key each time: a retried run asks again instead of replaying an earlier answer
    poll = get_settings().approval_poll_s
    try:
        answer: ApprovalInput = pause_flow_run(
            wait_for_input=ApprovalInput,
            timeout=timeout,
            poll_interval=max(1, int(min(poll, timeout / 4))),
            key=f"approval-{as_of}-{uuid.uuid4().hex[:8]}",
        )
    except FlowPauseTimeout:
        _resume_after_timeout(len(ids), timeout_hours)
        log.warning(
            "approval: no answer within %g h; %d action(s) stay pending_approval for the next run or `relance approve`",
            timeout_hours,
            len(ids),
        )
        return {"asked": True, "pending": len(ids), "answered": False}
    by = (answer.by or "").strip() or "someone"
    try:
        if not (answer.approve_all or answer.approve or answer.reject):
            raise UserError("approval: the answer approves and rejects nothing")
        from tasks import audit
        from tasks.dispatch import ledger
        from tasks.dispatch.approval import decide

        with warehouse.open_db(db) as con:
            ledger.ensure_tables(con)
            with audit.audited(
                db, "approve", as_of, con=con, actor=f"{by} (prefect-ui)", run_id=f"{audit.flow_run_id()}/approve"
            ) as run:
                decided = run.step(
                    "approve",
                    decide(
                        con,
                        as_of,
                        approve_all=answer.approve_all,
                        action_ids=answer.approve,
                        reject_ids=answer.reject,
                        by=f"{by} (prefect-ui)",
                        reason=answer.reason or None,
                        run_id=run.run_id,
                    ),
                )
    except UserError as e:
        # a wrong id or a missing reason changes nothing; tonight's other deliveries still go
        log.error("approval: %s — nothing decided; the notices stay pending_approval", e)
        return {"asked": True, "pending": len(ids), "answered": True, "error": str(e)}
    log.info(
        "approval by %s: approved %s, rejected %s, still pending %s",
        by,
        decided["approved"],
        decided["rejected"],
        decided["still_pending"],
    )
    return {
        "asked": True,
        "pending": len(ids),
        "answered": True,
        "approved": decided["approved"],
        "rejected": decided["rejected"],
        "still_pending": decided["still_pending"],
        "by": by,
    }


def _resume_after_timeout(pending: int, timeout_hours: float) -> None:
    """After FlowPauseTimeout the server keeps the run Paused (or its pause-expiration service marks it
    Failed) and would refuse a resume: set it Running again, forced, so the night's run goes on."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    ctx = FlowRunContext.get()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            ctx.flow_run.id,
            Running(message=f"no approval within {timeout_hours:g} h: {pending} action(s) stay pending_approval"),
            force=True,
        )
