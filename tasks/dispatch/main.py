"""The dispatch step itself (see the package docstring, tasks/dispatch/__init__.py, for what it does).

It lives here rather than in the package's __init__ so that importing one module of the package
(the PDF worker processes import tasks.dispatch.post only) does not import Prefect, DuckDB and
the rest of the step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from relance.core import phones
from relance.core.emails import valid_email
from relance.core.errors import UserError
from relance.core.policy import Policy, load_policy
from tasks import warehouse
from tasks.age import OPEN_AT_TARGETS
from tasks.dispatch import ledger
from tasks.dispatch.base import Run, aware_utc
from tasks.dispatch.config import load_channels_config
from tasks.dispatch.render import KIND, LANGUAGES, Renderer, get_renderer, message_context, sample_row
from tasks.step import get_logger, step

CHANNEL_ORDER = ("letter", "registered_letter", "email", "sms", "phone", "visit", "handoff")
PDF_CHANNELS = ("letter", "registered_letter", "handoff")


# -- preparation ---------------------------------------------------------------------------------


def _has_address(row: dict) -> bool:
    return bool(
        (row.get("street") or "").strip() and (row.get("postal_code") or "").strip() and (row.get("city") or "").strip()
    )


def check_contacts(con, now: datetime, pol: Policy | None = None) -> dict[str, int]:
    """Each planned delivery has the contact its channel needs, else falls back (contract §3).
    Reads the temp view planned_live (sql/dispatch/planned_live.sql, built by dispatch for its as_of).
    An unsubscribe or a spam report stops the emails of the policy's `stopped_by_opt_out` stages
    (pol; default: policies/default.yaml)."""
    opt_out_stages = {s.code for s in (pol or load_policy(None)).stages if s.stopped_by_opt_out}
    fallback, skipped, undeliverable = [], [], []
    for row in ledger.query(con, "contacts"):
        channel = row["channel"]
        if channel == "email":
            ok = valid_email(row["email"])
            what = "no email address" if not row["email"] else f"email address {row['email']!r} is not valid"
            if ok and row.get("email_bad"):  # a hard bounce or a drop reported by SendGrid (tasks/events.py)
                ok, what = False, f"email address {row['email']!r} bounced or was dropped by the provider"
            if ok and row.get("email_opted_out") and row["stage"] in opt_out_stages:
                skipped.append(
                    {
                        "delivery_id": row["delivery_id"],
                        "status": "skipped",
                        "detail": "the customer unsubscribed or reported spam: no preventive email",
                    }
                )
                continue
        elif channel in ("sms", "phone"):  # relance.core.phones: the rule ingest loads phones with
            what = phones.sms_problem(row["phone"]) if channel == "sms" else phones.call_problem(row["phone"])
            ok = what is None
            if ok and row.get("phone_bad"):  # outcome wrong_number (tasks/outcomes.py)
                ok, what = False, f"phone number {row['phone']} was reported wrong by a collector"
        elif channel in ("letter", "registered_letter", "visit"):
            if not _has_address(row):
                undeliverable.append(
                    {"delivery_id": row["delivery_id"], "status": "undeliverable", "detail": "no postal address"}
                )
            continue
        else:
            continue
        if ok:
            continue
        if row["action_has_letter"]:
            skipped.append(
                {
                    "delivery_id": row["delivery_id"],
                    "status": "skipped",
                    "detail": f"{what}; the action's letter already reaches the customer",
                }
            )
        elif _has_address(row):
            fallback.append(
                {
                    "delivery_id": row["delivery_id"],
                    "status": "planned",
                    "channel": "letter",
                    "detail": f"{what}: falls back to letter (was {channel})",
                }
            )
        else:
            undeliverable.append(
                {
                    "delivery_id": row["delivery_id"],
                    "status": "undeliverable",
                    "detail": f"{what} and no postal address",
                }
            )
    return {
        "fell_back_to_letter": len(ledger.transition(con, fallback, actor="dispatch", now=now)),
        "skipped_no_contact": len(ledger.transition(con, skipped, actor="dispatch", now=now)),
        "undeliverable": len(ledger.transition(con, undeliverable, actor="dispatch", now=now)),
    }


def check_templates(renderer: Renderer, channels: set[str], stages: set, pol: Policy | None = None) -> None:
    """Render every template tonight needs with sample values: a typo stops the run before any send.
    pol: the run's policy, whose stages say which wording and sample figures each stage has.
    stages: codes, or (code, ladder) pairs — a ladder may give a stage its own wording."""
    problems = []
    pairs = sorted(
        {(s, None) if isinstance(s, str) else (s[0], s[1]) for s in stages}, key=lambda p: (p[0], p[1] or "")
    )
    for channel in sorted(channels):
        for stage, ladder in pairs:
            for lang in LANGUAGES:
                try:
                    ctx = message_context(
                        sample_row(stage, channel, lang, policy=pol, ladder=ladder),
                        renderer.cfg,
                        date(2026, 3, 16),
                        renderer.i18n,
                    )
                    ctx.update(anchor="L0", formal=channel == "registered_letter")
                    if channel == "email":
                        renderer.email(ctx)
                    elif channel == "sms":
                        renderer.sms(ctx)
                    elif channel in ("letter", "registered_letter"):
                        renderer.letter(ctx)
                    elif channel in ("phone", "visit"):
                        renderer.script(ctx)
                except Exception as e:  # noqa: BLE001
                    where = stage if ladder in (None, "standard") else f"{stage} (ladder {ladder})"
                    problems.append(f"{KIND.get(channel, channel)}/{lang}/{where}: {type(e).__name__}: {e}")
    if problems:
        raise UserError("templates do not render, nothing was sent:\n  " + "\n  ".join(problems))


def _batch_table(con, delivery_ids: list[str]) -> None:
    """The temp table dispatch_batch(delivery_id, ord) the batch's queries read (context, history)."""
    import pyarrow as pa

    con.execute("create or replace temp table dispatch_batch (delivery_id varchar, ord integer)")
    con.register(
        "dispatch_ids",
        pa.table(
            {"delivery_id": pa.array(delivery_ids, pa.string()), "ord": pa.array(range(len(delivery_ids)), pa.int32())}
        ),
    )
    try:
        con.execute("insert into dispatch_batch select delivery_id, ord from dispatch_ids")
    finally:
        con.unregister("dispatch_ids")


#: The ladder's charge rules (sql/macros/charges.sql), run again by dispatch on the send date's claims.
SEND_CHARGES = "dispatch/send_charges"


def _send_date_charges(con, as_of: date, pol) -> dict[str, str]:
    """Recompute the late-payment charges of the batch's claims to the send date with the ladder's own
    rules (sql/macros/charges.sql, as int_ladder_charge_periods and int_ladder_charges use them) on
    send_claims: the models send_charge_periods and send_charges. Returns {action_id: why} for the
    actions whose late days fall in a half-year without a reference rate: those are not rendered
    tonight."""
    from relance.core.errors import PolicyError

    unpriced: dict[str, str] = {}
    for action_id, kind, earliest in con.execute(
        "select action_id, any_value(charge_kind), min(interest_from) from send_claims where charged "
        "group by action_id order by action_id"
    ).fetchall():
        try:
            if kind == "legal_rate":
                pol.require_legal_rates(min(earliest, as_of), as_of)
            else:
                pol.require_rates(earliest, as_of)
        except PolicyError as e:
            unpriced[action_id] = str(e)
    if unpriced:  # held back from tonight's send (their charges would miss the days of that half-year)
        con.execute(
            "update send_claims set charged = false where list_contains($ids, action_id)", {"ids": list(unpriced)}
        )
    no_payments = not ledger.table_exists(con, "stg_payments")
    if no_payments:  # a warehouse never ingested: no payment cuts a period (dropped once the charges are built)
        con.execute(
            "create or replace temp table stg_payments (invoice_id varchar, paid_date date, amount decimal(18,2))"
        )
    # send_claims as built and amended above (the unpriced ones no longer charged): not built again;
    # each claim carries its ladder's charge rule (ladder_defs)
    warehouse.build(
        con,
        SEND_CHARGES,
        {"as_of": as_of, "days_in_year": pol.late_payment_charges.days_in_year},
        built=("dispatch/send_claims",),
    )
    if no_payments:
        con.execute("drop table temp.stg_payments")
    return unpriced


def _send_date_snapshot(con, as_of: date) -> None:
    """Temp table dispatch_snapshot: the batch's claimed invoices as they stand on the send date
    (open amount, held). From tonight's invoice_snapshot when the aging wrote one; otherwise (a
    night when every invoice is paid leaves no snapshot row at all, or a dispatch without aging)
    from the aging models themselves, run for as_of on the ingested source."""
    claimed = (
        "select distinct unnest(a.invoice_ids) as invoice_id from dispatch_batch b "
        "join deliveries d using (delivery_id) join dunning_actions a using (action_id)"
    )
    if warehouse.scalar(
        con, "select count(*) > 0 from invoice_snapshot where as_of = $as_of", {"as_of": as_of}
    ) or not ledger.table_exists(con, "stg_invoices"):
        con.execute(
            "create or replace temp table dispatch_snapshot as "
            "select invoice_id, kind, issue_date, due_date, amount, open_amount, held from invoice_snapshot "
            f"where as_of = $as_of and invoice_id in ({claimed})",
            {"as_of": as_of},
        )
        return
    warehouse.build(con, OPEN_AT_TARGETS, {"as_of": as_of})
    con.execute(
        f"""
        create or replace temp table dispatch_snapshot as
        select o.invoice_id, o.kind, o.issue_date, o.due_date, o.amount, o.open_amount,
               exists (select 1 from int_active_holds h
                       where h.invoice_id = o.invoice_id or (h.invoice_id is null and h.customer_id = o.customer_id
                                                          and (h.currency is null or h.currency = o.currency))) as held
        from int_open_invoices o
        where o.open_amount > 0 and o.invoice_id in ({claimed})
        """
    )


def load_batch(con, delivery_ids: list[str], as_of: date, pol=None) -> list[dict]:
    """The batch's rendering context (sql/dispatch/context.sql) as of the send date `as_of`: the
    invoices still open, their open amounts and days late, and the charges recomputed to that day
    (contract §3 "What a message says"). Rows of actions whose charges cannot be priced (no
    reference rate) carry `unpriced` (the reason)."""
    _batch_table(con, delivery_ids)
    _charges_view(con)
    _send_date_snapshot(con, as_of)
    pol = pol if pol is not None else load_policy(None)
    from tasks.escalate import write_policy_tables

    write_policy_tables(con, pol)  # each action's ladder: its charge rule (ladder_defs), its stages
    warehouse.run_model(con, "dispatch/send_claims", {"as_of": as_of})
    unpriced = _send_date_charges(con, as_of, pol)
    rows = ledger.query(con, "context", {"as_of": as_of})
    for row in rows:
        row["unpriced"] = unpriced.get(row["action_id"])
        # what the stage does (formal layout, attached letter, reference prefix, wording files)
        row["stage_keys"] = pol.stage(row["stage"], row.get("ladder"))
        row["charge_kind"] = pol.charge_rule(row.get("ladder") or "standard")[0]
    return rows


def _money_text(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def figures_change(row: dict) -> str | None:
    """What the message states that differs from the decision (None when nothing does)."""
    changes = []
    decided_ids, stated_ids = list(row.get("decided_invoice_ids") or []), list(row.get("invoice_ids") or [])
    if decided_ids != stated_ids:
        changes.append(f"invoices {', '.join(decided_ids) or '-'} -> {', '.join(stated_ids) or '-'}")
    for label, before, after in (
        ("amount due", row.get("decided_amount_due"), row.get("amount_due")),
        ("interest", row.get("decided_interest_amount"), row.get("interest_amount")),
        ("indemnity", row.get("decided_indemnity_amount"), row.get("indemnity_amount")),
        ("charges", row.get("decided_charges_total"), row.get("charges_total")),
    ):
        if before != after:
            changes.append(f"{label} {_money_text(before)} -> {_money_text(after)}")
    if not changes and not row.get("recomputed"):
        return None
    decided = row["action_as_of"].isoformat() if row.get("action_as_of") else "?"
    head = (
        f"figures as of {row['figures_as_of'].isoformat() if row.get('figures_as_of') else '?'} (decided on {decided})"
    )
    return head + (": " + "; ".join(changes) if changes else ": unchanged")


def record_figures(con, rows: list[dict], now: datetime) -> int:
    """Record on each delivery what its message states (deliveries.figures_as_of, stated_amount_due,
    stated_charges_total, stated_invoice_ids) and, when a figure changed since the action was
    decided, a delivery_events entry (status unchanged) saying what changed. Returns the number of
    changed deliveries."""
    import pyarrow as pa

    if not rows:
        return 0
    table = pa.table(
        {
            "delivery_id": pa.array([r["delivery_id"] for r in rows], pa.string()),
            "figures_as_of": pa.array([r.get("figures_as_of") for r in rows], pa.date32()),
            "amount_due": pa.array([r.get("amount_due") for r in rows], pa.decimal128(38, 2)),
            "charges_total": pa.array([r.get("charges_total") for r in rows], pa.decimal128(38, 2)),
            "invoice_ids": pa.array([list(r.get("invoice_ids") or []) for r in rows], pa.list_(pa.string())),
            "change": pa.array([figures_change(r) if r.get("recomputed") else None for r in rows], pa.string()),
        }
    )
    con.register("dispatch_figures", table)
    try:
        with warehouse.transaction(con):
            con.execute(
                """
                update deliveries set
                    figures_as_of = f.figures_as_of,
                    stated_amount_due = f.amount_due,
                    stated_charges_total = f.charges_total,
                    stated_invoice_ids = f.invoice_ids
                from dispatch_figures f
                where deliveries.delivery_id = f.delivery_id and deliveries.status = 'planned'
                """
            )
            changed = con.execute(
                """
                insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
                select d.delivery_id, $now, d.status, d.status, d.channel, d.provider, 'dispatch', f.change
                from dispatch_figures f join deliveries d using (delivery_id)
                where f.change is not null and not f.change like '%: unchanged'
                returning delivery_id
                """,
                {"now": now},
            ).fetchall()
    finally:
        con.unregister("dispatch_figures")
    return len(changed)


#: The rendering context of the deliveries a dispatch() run picked, read once before its batches
#: (one query over invoice_snapshot instead of one per batch), by (db, as_of). Nothing else writes
#: the warehouse during the run (one writer per file), so only a delivery's own status, channel and
#: attempts can change between then and its batch: dispatch_batch reads those again.
_PRELOADED: dict[tuple[str, date], dict[str, dict]] = {}


def _batch_rows(con, db: str, as_of: date, delivery_ids: list[str], policy: str | None = None) -> list[dict]:
    cached = _PRELOADED.get((str(db), as_of))
    if cached is None or any(d not in cached for d in delivery_ids):
        return [r for r in load_batch(con, delivery_ids, as_of, load_policy(policy)) if not r["unpriced"]]
    _batch_table(con, delivery_ids)
    now = {
        d: (status, channel, attempts)
        for d, status, channel, attempts in con.execute(
            "select d.delivery_id, d.status, d.channel, d.attempts from deliveries d join dispatch_batch b using (delivery_id)"
        ).fetchall()
    }
    rows = []
    for d in delivery_ids:
        if d in now:
            row = dict(cached[d])
            row["status"], row["channel"], row["attempts"] = now[d]
            rows.append(row)
    return rows


def _charges_view(con) -> None:
    """dispatch_charges(action_id, invoice_id, interest_amount, indemnity_amount) over the ladder's
    per-invoice charges (action_charges), and dispatch_charge_periods(action_id, half_year,
    reference_rate, annual_rate) over action_charge_periods (the rates a formal notice states);
    each empty when its table does not exist (a ledger written without charges)."""
    if ledger.table_exists(con, "action_charge_periods"):
        con.execute(
            "create or replace temp view dispatch_charge_periods as "
            "select action_id, half_year, reference_rate, annual_rate from action_charge_periods"
        )
    else:
        con.execute(
            "create or replace temp view dispatch_charge_periods as select null::varchar as action_id, "
            "null::varchar as half_year, null::decimal(9,4) as reference_rate, null::decimal(9,4) as annual_rate where false"
        )
    if ledger.table_exists(con, "action_charges"):
        con.execute(
            "create or replace temp view dispatch_charges as select action_id, invoice_id, "
            "interest_amount::decimal(38,2) as interest_amount, indemnity_amount::decimal(18,2) as indemnity_amount "
            "from action_charges"
        )
    else:
        con.execute(
            "create or replace temp view dispatch_charges as select null::varchar as action_id, "
            "null::varchar as invoice_id, null::decimal(38,2) as interest_amount, "
            "null::decimal(18,2) as indemnity_amount where false"
        )


# -- one batch -------------------------------------------------------------------------------------


@step(name="dispatch_batch", task_run_name="{channel}-{batch_no}")
def dispatch_batch(
    db: str,
    as_of: date,
    outbox: str,
    channel: str,
    batch_no: int,
    delivery_ids: list[str],
    send: bool = False,
    now: datetime | None = None,
    channels_config: str | None = None,
    policy: str | None = None,
) -> dict:
    """Render and send one batch of one channel; returns its counts (plus print parts for letters)."""
    from tasks.dispatch import email, handoff, post, sms, worklists

    log = get_logger()
    started = time.perf_counter()
    cfg = load_channels_config(channels_config)
    renderer = get_renderer(cfg)
    with warehouse.open_db(db) as con:
        run = Run(con=con, as_of=as_of, outbox=Path(outbox), send=send, now=aware_utc(now), cfg=cfg, renderer=renderer)
        rows = [
            r
            for r in _batch_rows(con, db, as_of, delivery_ids, policy)
            if r["status"] == "planned" and r["channel"] == channel
        ]
        if channel == "email":
            out = email.run_batch(run, rows)
        elif channel == "sms":
            out = sms.run_batch(run, rows)
        elif channel in ("letter", "registered_letter"):
            out = post.run_batch(run, rows, channel)
        elif channel in ("phone", "visit"):
            out = worklists.run_batch(run, rows, channel)
        elif channel == "handoff":
            out = handoff.run_batch(run, rows)
        else:
            raise UserError(f"unknown channel {channel!r}")
    out.update(channel=channel, batch=batch_no, seconds=round(time.perf_counter() - started, 3), errors=run.errors)
    log.info("dispatch %s batch %d: %s in %.1f s", channel, batch_no, out["counts"], out["seconds"])
    return out


# -- the step ------------------------------------------------------------------------------------


def _hold_back(con, rows: list[dict], now: datetime, prepared: dict, errors: list[str]) -> set[str]:
    """Deliveries not sent tonight: a claim settled (or put on hold) since its action was decided
    is `skipped` (stale.sql does it when tonight's snapshot exists; this covers the latest one
    before it); an action whose charges cannot be priced (no reference rate) stays `planned`."""
    settled = [
        {
            "delivery_id": r["delivery_id"],
            "status": "skipped",
            "detail": f"settled or put on hold since {r['action_as_of'].isoformat()}: no invoice of the action is still "
            f"open and unheld on {r['figures_as_of'].isoformat() if r.get('figures_as_of') else '?'}",
        }
        for r in rows
        if r.get("recomputed") and not r.get("invoices")
    ]
    prepared["skipped_settled"] = len(ledger.transition(con, settled, actor="dispatch", now=now))
    unpriced = [r for r in rows if r.get("unpriced") and r.get("invoices")]
    for r in unpriced:
        errors.append(f"{r['delivery_id']}: not sent tonight, its charges cannot be computed: {r['unpriced']}")
    if unpriced:
        get_logger().error(
            "dispatch: %d deliveries kept planned: no reference rate for their charges (%s)",
            len(unpriced),
            unpriced[0]["unpriced"],
        )
    return {r["delivery_id"] for r in settled} | {r["delivery_id"] for r in unpriced}


def _batches(picked: list[dict], batch_size: int) -> list[tuple[str, list[str]]]:
    by_channel: dict[str, list[dict]] = defaultdict(list)
    for row in picked:
        by_channel[row["channel"]].append(row)
    out = []
    for channel in CHANNEL_ORDER + tuple(sorted(set(by_channel) - set(CHANNEL_ORDER))):
        rows = by_channel.get(channel, [])
        if not rows:
            continue
        if channel in ("phone", "visit"):  # one worklist per collector
            groups: dict[str, list[str]] = defaultdict(list)
            for r in rows:
                groups[r["collector"] or ""].append(r["delivery_id"])
            out += [(channel, ids) for _, ids in sorted(groups.items())]
        else:
            ids = [r["delivery_id"] for r in rows]
            out += [(channel, ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
    return out


def _preflight(send: bool, channels: set[str]) -> None:
    """With --send, the providers' credentials must be there before anything is claimed."""
    if not send:
        return
    from relance.core.settings import get_settings, resolve_secret
    from tasks.dispatch.sms import gateway_token

    if "email" in channels:
        s = get_settings()
        if not resolve_secret(s.sendgrid_api_key, s.sendgrid_key_block):
            raise UserError(
                f"--send: no SendGrid API key; set SENDGRID_API_KEY or the Prefect Secret block '{s.sendgrid_key_block}'"
            )
    if "sms" in channels:
        if not gateway_token():
            raise UserError(
                "--send: the SMS gateway is not configured; set RELANCE_SMS_ACCOUNT_SID and RELANCE_SMS_AUTH_TOKEN"
            )


@step(name="dispatch")
def dispatch(
    db: str,
    as_of: date,
    outbox: str,
    send: bool = False,
    policy: str | None = None,
    batch_size: int = 500,
    auto_approve: bool = False,
    now: datetime | None = None,
    channels_config: str | None = None,
) -> dict:
    """Send (or render into the outbox) tonight's planned deliveries; see the module docstring."""
    from tasks.dispatch import approval, post

    log = get_logger()
    started = time.perf_counter()
    if batch_size < 1:
        raise UserError("batch_size must be at least 1")
    pol = load_policy(policy)
    cfg = load_channels_config(channels_config)
    renderer = get_renderer(cfg)
    moment = aware_utc(now)
    stamp = ledger.naive_utc(moment)
    # (ladder|stage) of the stages that require approval, in every ladder
    approval_stages = [
        f"{name}|{s.code}" for name in pol.ladder_names for _, s in pol.ladder_stages(name) if s.requires_approval
    ]
    # the ladders whose every letter waits for approval (letters_require_approval)
    letter_ladders = [lad.name for lad in pol.ladders if lad.letters_require_approval]
    summary: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "mode": "send" if send else "outbox",
        "outbox": str(Path(outbox) / as_of.isoformat()),
    }
    with warehouse.open_db(db) as con:
        ledger.ensure_tables(con)
        if not ledger.table_exists(con, "deliveries") or not ledger.table_exists(con, "dunning_actions"):
            raise UserError(f"{db} has no deliveries table: run the nightly job (ingest, age, escalate) first")
        if not ledger.table_exists(con, "stg_customers"):
            raise UserError(f"{db} has no customers (stg_customers): run the nightly job's ingest first")
        recovered = ledger.recover_in_doubt(con, stamp)
        prepared: dict[str, int] = {"rewritten_after_stop": len(recovered["local_reset"])}
        guard = {"approval_stages": approval_stages, "letter_ladders": letter_ladders, "as_of": as_of}
        if approval_stages or letter_ladders:
            held = ledger.query(con, "needs_approval", guard)
            prepared["held_for_approval"] = len(
                ledger.transition(con, held, actor="dispatch", now=stamp, set_error=False)
            )
        if auto_approve:
            decided = approval.decide(
                con,
                as_of,
                approve_all=True,
                action_ids=(),
                reject_ids=(),
                by="auto-approve",
                reason="--auto-approve",
                now=stamp,
            )
            summary["auto_approved"] = len(decided["approved"])
        stale = ledger.query(con, "stale", {"as_of": as_of})
        prepared["skipped_stale"] = len(ledger.transition(con, stale, actor="dispatch", now=stamp))
        warehouse.run_model(con, "dispatch/planned_live", {"as_of": as_of})  # a view: read afresh by each query
        prepared.update(check_contacts(con, stamp, pol))
        if letter_ladders:  # a letter that just replaced an email or a call waits for approval too
            held = ledger.query(con, "needs_approval", guard)
            prepared["held_for_approval"] = prepared.get("held_for_approval", 0) + len(
                ledger.transition(con, held, actor="dispatch", now=stamp, set_error=False)
            )
        picked = ledger.query(con, "pick")
        in_doubt = ledger.in_doubt(con)
        pending = sum(a["deliveries"] for a in approval.pending_actions(con, as_of).values())
    channels = {r["channel"] for r in picked}
    check_templates(renderer, channels, {(r["stage"], r.get("ladder")) for r in picked}, pol)
    _preflight(send, channels)

    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors: list[str] = []
    aborted: set[str] = set()
    batches = _batches(picked, batch_size)
    printed = {}
    # Held open through the batches: each batch's own connection then reuses the open database
    # instead of opening the file and checkpointing it on close (~0.1 s a batch at 1M invoices).
    keeper = warehouse.connect(db)
    key = (str(db), as_of)
    try:
        if any(channel in PDF_CHANNELS and len(ids) >= cfg.letters.parallel_from for channel, ids in batches):
            post.warm_pool(cfg.letters.processes)  # the workers start while the first batch is prepared
        loaded = load_batch(keeper, [r["delivery_id"] for r in picked], as_of, pol)
        held_back = _hold_back(keeper, loaded, stamp, prepared, errors)
        prepared["figures_changed"] = record_figures(
            keeper, [r for r in loaded if r["delivery_id"] not in held_back], stamp
        )
        _PRELOADED[key] = {r["delivery_id"]: r for r in loaded if r["delivery_id"] not in held_back}
        for n, (channel, ids) in enumerate(batches, start=1):
            if channel in aborted:
                continue
            ids = [d for d in ids if d not in held_back]
            if not ids:
                continue
            out = dispatch_batch(db, as_of, outbox, channel, n, ids, send, moment, channels_config, policy)
            for status, count in out["counts"].items():
                by_channel[channel][status] += count
            errors += out.get("errors") or []
            if out.get("aborted"):
                aborted.add(channel)
    finally:
        _PRELOADED.pop(key, None)
        keeper.close()
        post.shutdown_pool()
        # even after a failure: the letters already recorded as sent go to the print room
        # (also a stopped earlier run's recorded letters, whatever its date: their parts are still there)
        for channel in ("letter", "registered_letter"):
            for parts in sorted(Path(outbox).glob(f"*/{channel}/.parts")):
                try:
                    done = post.finalize(parts.parent, channel)
                except Exception as e:  # never hide the error that stopped the run; the parts stay for the next one
                    log.error(
                        "dispatch: print batch for %s not assembled (%s); the next run assembles it", parts.parent, e
                    )
                    errors.append(f"{parts.parent}: print batch not assembled: {e}")
                    continue
                if done:
                    key = (
                        channel
                        if parts.parent.parent.name == as_of.isoformat()
                        else f"{channel}@{parts.parent.parent.name}"
                    )
                    printed[key] = done

    # the written recaps of tonight's commitments and the plans' instalment reminders (issue 14,
    # tasks/recaps.py): through the same ledger, once each
    try:
        from tasks import recaps

        summary["recaps"] = recaps.send(db, as_of, Path(outbox), send, moment, cfg, renderer, pol)
    except UserError as e:
        errors.append(f"recaps: {e}")
    # the statements of late-payment charges approved (or not needing approval): through the same
    # ledger, once each (tasks/late_charges.py)
    try:
        from tasks import late_charges

        statements = late_charges.send(db, as_of, Path(outbox), send, moment, cfg, renderer, pol)
        if statements:
            summary["late_charges"] = statements
    except UserError as e:
        errors.append(f"late charges: {e}")
    totals: dict[str, int] = defaultdict(int)
    for counts in by_channel.values():
        for status, count in counts.items():
            totals[status] += count
    summary.update(
        by_channel={c: dict(v) for c, v in by_channel.items()},
        totals=dict(totals),
        batches=len(batches),
        prepared=prepared,
        in_doubt={"count": len(in_doubt), "new": recovered["in_doubt_new"], "ids": in_doubt[:200]},
        pending_approval=pending,
        print=printed,
        errors=errors,
        seconds=round(time.perf_counter() - started, 2),
    )
    if in_doubt:
        log.warning(
            "dispatch: %d deliveries in doubt (never re-sent automatically): %s%s — check the provider, "
            "then `relance resolve`",
            len(in_doubt),
            ", ".join(in_doubt[:10]),
            " …" if len(in_doubt) > 10 else "",
        )
    log.info("dispatch %s (%s): %s in %.1f s", as_of, summary["mode"], dict(totals), summary["seconds"])
    return summary


__all__ = ["dispatch", "dispatch_batch", "check_contacts", "check_templates"]
