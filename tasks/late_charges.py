"""late_charges: the periodic statement of late-payment charges on invoices paid late (issue 16 §3).

Code de commerce L441-10: an invoice paid after its due date owes, in b2b, interest until the
payment date and the fixed 40 € recovery indemnity, even once paid. Opt-in by policy
(`late_charges_statement`, docs/policy.md "Statements of late-payment charges"):

* on the first business day of each month (quarter), the first run on or after it makes, per
  debtor (customer × currency), a statement of the invoices of a charged segment
  (`late_payment_charges.applies_to_segments`) whose payments reached their amount after their
  due date, in the previous month (quarter) or the `lookback_months` before it, and that no
  statement charged yet — a payment loaded late is charged on the next statement
  (sql/intermediate/int_late_charge_candidates.sql);
* never wrong towards a debtor: an invoice under a dispute or a legal hold on a day from its due
  date on is withheld (`not_charged` in the summary, with its reason); a recorded dispute
  resolved `rejected` releases it to the next statement;
* interest day by day on what was owed each day, from the day after the due date to the day
  before the payment that settled it — the ladder's own rules (sql/macros/charges.sql:
  half-years at the reference rate + margin, partial payments lowering the base) —, plus the
  indemnity per invoice (int_late_charge_invoices, late_charge_statements_due);
* an invoice a SENT formal notice or litigation action already charged (action_charges) owes no
  indemnity again, and interest only for the days after the figures that notice stated;
* below `min_total` (interest + indemnities in the unit's currency) no statement is made;
* never twice: `late_charges` is keyed by invoice_id, a statement by (unit, period); a re-run of
  the date, or any later run, finds them there and charges nothing again.

Each statement (`late_charge_statements`, action-like) has deliveries in the ledger
(`<statement_id>|email`, `<statement_id>|letter`, action_id = statement_id): `pending_approval`
until `relance approve` (or the flow's pause) approves it like a formal notice, then `planned`;
the next dispatch renders the PDF ("Relevé des pénalités de retard", WeasyPrint, templates/
late_charges) and sends it (email with the PDF attached, letter for the print room) through the
ledger's claim/record (`send`, called by dispatch). A backfill replay makes them `simulated`.
After each dispatch a statement's status says where it is: sent, partly_sent or failed
(`refresh_statuses`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from relance.core.emails import valid_email
from relance.core.errors import PolicyError
from relance.core.policy import Policy, load_policy
from tasks import warehouse
from tasks.dispatch import ledger
from tasks.step import get_logger, step

STAGE = "late_charges_statement"
TARGET = "marts/late_charge_statements_due"


def statement_day(pol: Policy, as_of: date) -> date:
    """The first business day (weekends and the public holidays of the policy's country) of the
    period as_of falls in: the day its previous period's statements are made."""
    from tasks.calendar import public_holidays

    first = pol.late_charges_statement.period_start_of(as_of)
    holidays = public_holidays(pol.freshness.country, first, first + timedelta(days=14)) or {}
    day = first
    while day.weekday() >= 5 or day in holidays:
        day += timedelta(days=1)
    return day


def _params(pol: Policy, as_of: date, mode: str) -> dict[str, Any]:
    cfg, charges = pol.late_charges_statement, pol.late_payment_charges
    start, end, label = cfg.period_of(as_of)
    return {
        "as_of": as_of,
        "mode": mode,
        "period": label,
        "period_start": start,
        "period_end": end,
        "window_start": cfg.window_start_of(as_of),
        "days_in_year": charges.days_in_year,
        "min_total": cfg.min_total,
    }


def make_statements(
    con, as_of: date, pol: Policy, mode: str = "live", now: datetime | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """Make the statements due on as_of (see the module docstring) on an open connection whose
    staging is loaded; returns what was made. Does nothing when the policy does not enable it or
    before the period's statement day."""
    from tasks.escalate import write_policy_tables

    cfg = pol.late_charges_statement
    if not cfg.enabled:
        return {"enabled": False}
    day = statement_day(pol, as_of)
    params = _params(pol, as_of, mode)
    out: dict[str, Any] = {"enabled": True, "period": params["period"], "statement_day": day.isoformat()}
    if as_of < day:
        return {**out, "statements": 0, "note": "before the statement day"}
    warehouse.ensure_schema(con)
    ledger.ensure_tables(con)
    write_policy_tables(con, pol)  # ladder_rates: the reference rate of each half-year
    built = warehouse.build(con, "intermediate/int_late_charge_claims", params)
    withheld = _withheld(con)
    if withheld:  # said each night while in the window: finance may charge them by hand
        get_logger().warning(
            "late charges: not charged (disputed or under a legal hold): %s",
            ", ".join(f"{r['invoice_id']} ({r['reason']})" for r in withheld),
        )
    out["not_charged"] = withheld
    # the late days charged run from the day after the (stated-through) due date to the day before the payment
    span = con.execute("select min(due_date) + 1, max(paid_on) - 1 from int_late_charge_claims").fetchone()
    if span[0] is not None:
        try:
            pol.require_rates(span[0], span[1])
        except PolicyError as e:  # said, and nothing charged tonight: the next run makes them
            get_logger().error("late charges: no statement tonight: %s", e)
            return {**out, "statements": 0, "error": str(e)}
    warehouse.build(con, TARGET, params, built=built)
    for model in ("intermediate/int_late_charge_candidates", "intermediate/int_late_charge_invoices", TARGET):
        bad = warehouse.check_model(con, model, params, keys_only=True)
        if bad:
            raise warehouse.ModelCheckFailed("; ".join(str(v) for v in bad))
    below = warehouse.scalar(con, "select count(*) from late_charge_statements_due where not reaches_min_total")
    made = _record(con, as_of, pol, mode, ledger.naive_utc(now), run_id)
    return {**out, "statements": len(made), "statement_ids": made, "below_min_total": below}


def _withheld(con) -> list[dict[str, Any]]:
    """The invoices settled late in the window that a dispute or a legal hold keeps off the
    statements (int_late_charge_candidates.withheld_reason): not charged, listed in the summary."""
    rows = con.execute(
        """select invoice_id, customer_id, currency, paid_on, withheld_reason from int_late_charge_candidates
           where withheld_reason is not null order by customer_id, currency, invoice_id"""
    ).fetchall()
    keys = ("invoice_id", "customer_id", "currency", "paid_on", "reason")
    return [dict(zip(keys, (*r[:3], r[3].isoformat(), r[4]))) for r in rows]


def _record(con, as_of: date, pol: Policy, mode: str, now: datetime, run_id: str | None) -> list[str]:
    """Write the statements that reach min_total, their invoices, periods and deliveries, in one
    transaction. A live statement replaces a replay's of the same id (a backfill's simulation)."""
    cfg = pol.late_charges_statement
    due = con.execute(
        """
        select s.statement_id, s.customer_id, s.currency, s.invoice_ids, s.interest_amount, s.indemnity_amount,
               s.indemnity_currency, s.charges_total, c.email, c.street, c.postal_code, c.city,
               exists (select 1 from contact_flags f
                       where f.customer_id = c.customer_id and f.channel = 'email' and f.flag = 'bad'
                         and (f.address is null or f.address = lower(trim(c.email)))) as email_bad
        from late_charge_statements_due s
        join stg_customers c using (customer_id)
        where s.reaches_min_total
        order by s.statement_id
        """
    ).fetchall()
    if not due:
        return []
    ids = [r[0] for r in due]
    if mode == "replay":
        status = "simulated"
    else:
        status = "pending_approval" if cfg.requires_approval else "planned"
    deliveries = []
    for sid, _, _, _, _, _, _, _, email, street, postal_code, city, email_bad in due:
        has_address = bool((street or "").strip() and (postal_code or "").strip() and (city or "").strip())
        email_ok = valid_email(email) and not email_bad
        for channel in cfg.channels:
            row = {"delivery_id": f"{sid}|{channel}", "action_id": sid, "channel": channel, "status": status}
            if channel == "email" and not email_ok:
                if "letter" in cfg.channels:
                    row.update(
                        status="skipped", error="no usable email address; the statement's letter reaches the customer"
                    )
                elif has_address:
                    row.update(delivery_id=f"{sid}|letter", channel="letter", fallback_from="email")
                else:
                    row.update(status="undeliverable", error="no usable email address and no postal address")
            elif channel == "letter" and not has_address:
                row.update(status="undeliverable", error="no postal address")
            deliveries.append(row)
    params = {"ids": ids, "now": now, "as_of": as_of, "mode": mode}
    with warehouse.transaction(con):
        if mode == "live":  # a backfill's simulated statement of the same id gives way to the real one
            # (delivery_events, append-only, keep its journal)
            replaced = "select statement_id from late_charge_statements where mode = 'replay' and list_contains($ids, statement_id)"
            con.execute(f"delete from deliveries where action_id in ({replaced})", {"ids": ids})
            con.execute(
                f"delete from late_charge_periods where invoice_id in (select invoice_id from late_charges where statement_id in ({replaced}))",
                {"ids": ids},
            )
            con.execute(f"delete from late_charges where statement_id in ({replaced})", {"ids": ids})
            con.execute(f"delete from late_charge_statements where statement_id in ({replaced})", {"ids": ids})
            # an invoice a replay charged on an EARLIER period's simulated statement (a backfill
            # before the month start, then the live run of the next period) is charged live now:
            # its simulated charge gives way too (late_charges is keyed by invoice_id)
            simulated = """select c.invoice_id from late_charges c join late_charge_statements s using (statement_id)
                           where s.mode = 'replay' and c.invoice_id in (
                               select i.invoice_id from int_late_charge_invoices i
                               join late_charge_statements_due d using (customer_id, currency)
                               where list_contains($ids, d.statement_id))"""
            con.execute(f"delete from late_charge_periods where invoice_id in ({simulated})", {"ids": ids})
            con.execute(f"delete from late_charges where invoice_id in ({simulated})", {"ids": ids})
        con.execute(
            """
            insert into late_charge_statements
                (statement_id, as_of, customer_id, currency, period, period_start, period_end, mode, status,
                 requires_approval, invoice_ids, interest_amount, indemnity_amount, indemnity_currency, charges_total,
                 reference_margin, created_at)
            select statement_id, $as_of, customer_id, currency, $period, $period_start, $period_end, $mode, $status,
                   $requires_approval, invoice_ids, interest_amount, indemnity_amount, indemnity_currency, charges_total,
                   reference_margin, $now
            from late_charge_statements_due
            where list_contains($ids, statement_id)
            """,
            {
                **params,
                "status": status,
                "requires_approval": cfg.requires_approval and mode == "live",
                **{k: v for k, v in _params(pol, as_of, mode).items() if k.startswith("period")},
            },
        )
        con.execute(
            """
            insert into late_charges
            select i.invoice_id, i.customer_id, i.currency, i.due_date, i.paid_on, i.amount, i.days_late,
                   i.interest_from, i.interest_amount, i.indemnity_amount, i.indemnity_currency, s.statement_id, $as_of
            from int_late_charge_invoices i
            join late_charge_statements_due s using (customer_id, currency)
            where list_contains($ids, s.statement_id)
            """,
            {"ids": ids, "as_of": as_of},
        )
        con.execute(
            """
            insert or replace into late_charge_periods
            select p.invoice_id, p.half_year, p.period_start, p.period_end, p.days, p.reference_rate, p.annual_rate,
                   p.open_amount, p.interest
            from int_late_charge_periods p
            join int_late_charge_invoices i using (invoice_id)
            join late_charge_statements_due s using (customer_id, currency)
            where list_contains($ids, s.statement_id)
            """,
            {"ids": ids},
        )
        for d in deliveries:
            con.execute(
                """insert into deliveries (delivery_id, action_id, channel, status, attempts, last_error, fallback_from,
                                           created_at, updated_at)
                   values ($delivery_id, $action_id, $channel, $status, 0, $error, $fallback_from, $now, $now)""",
                {"error": None, "fallback_from": None, **d, "now": now},
            )
            con.execute(
                """insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor,
                                                detail, run_id)
                   values ($delivery_id, $now, $status, null, $channel, null, 'late_charges', $detail, $run_id)""",
                {
                    "delivery_id": d["delivery_id"],
                    "now": now,
                    "status": d["status"],
                    "channel": d["channel"],
                    "detail": d.get("error") or f"statement of late-payment charges {d['action_id']}",
                    "run_id": run_id,
                },
            )
    return ids


@step(name="late_charges")
def late_charges(
    db: str, as_of: date, policy: str | None = None, mode: str = "live", run_id: str | None = None
) -> dict[str, Any]:
    """The nightly step: make the statements of late-payment charges due on as_of (module docstring)."""
    pol = load_policy(policy)
    if not pol.late_charges_statement.enabled:
        return {"enabled": False}
    with warehouse.open_db(db) as con:
        out = make_statements(con, as_of, pol, mode, run_id=run_id)
    get_logger().info("late charges %s: %s", as_of, out)
    return out


# -- sending (called by dispatch, after the ladder's messages and the recaps) ---------------------


def _context(con, statement_id: str, cfg, renderer, as_of: date, pol: Policy) -> dict[str, Any]:
    from tasks.dispatch.render import language_of

    row = con.execute(
        """select s.statement_id, s.customer_id, s.currency, s.period, s.period_start, s.period_end,
                  s.interest_amount, s.indemnity_amount, s.indemnity_currency, s.charges_total, s.reference_margin,
                  c.name, c.email, c.street, c.postal_code, c.city, c.language
           from late_charge_statements s join stg_customers c using (customer_id) where s.statement_id = $id""",
        {"id": statement_id},
    ).fetchone()
    keys = (
        "id customer_id currency period_label period_start period_end interest indemnity indemnity_currency total "
        "margin name email street postal_code city language"
    ).split()
    s = dict(zip(keys, row))
    invoices = []
    for invoice_id, due_date, paid_on, days_late, interest, indemnity in con.execute(
        """select invoice_id, due_date, paid_on, days_late, interest_amount, indemnity_amount from late_charges
           where statement_id = $id order by due_date, invoice_id""",
        {"id": statement_id},
    ).fetchall():
        periods = [
            dict(
                zip(
                    ("half_year", "period_start", "period_end", "days", "open_amount", "reference_rate", "annual_rate"),
                    p,
                )
            )
            for p in con.execute(
                """select half_year, period_start, period_end, days, open_amount, reference_rate, annual_rate
                   from late_charge_periods where invoice_id = $i order by period_start""",
                {"i": invoice_id},
            ).fetchall()
        ]
        same = s["indemnity_currency"] == s["currency"]
        invoices.append(
            {
                "invoice_id": invoice_id,
                "due_date": due_date,
                "paid_on": paid_on,
                "days_late": days_late,
                "interest": interest,
                "indemnity": indemnity,
                "total": interest + (indemnity if same else Decimal("0.00")),
                "periods": periods,
            }
        )
    rates = sorted(
        {(p["half_year"], p["reference_rate"], p["annual_rate"]) for inv in invoices for p in inv["periods"]}
    )
    same = s["indemnity_currency"] == s["currency"]
    lang = language_of(s["language"] or pol.default_language)
    return {
        "lang": lang,
        "currency": s["currency"],
        "t": renderer.labels(lang),
        "today": as_of,
        "creditor": cfg.creditor.model_dump(),
        "letter": False,
        "draft": False,
        "anchor": "S0",
        "customer": {
            "id": s["customer_id"],
            "name": s["name"],
            "email": s["email"],
            "street": s["street"] or "",
            "postal_code": s["postal_code"] or "",
            "city": s["city"] or "",
        },
        "statement": {
            "id": statement_id,
            "period_label": s["period_label"],
            "period_start": s["period_start"],
            "period_end": s["period_end"],
            "interest": s["interest"],
            "indemnity": s["indemnity"],
            "indemnity_currency": s["indemnity_currency"],
            "indemnity_per_invoice": pol.late_payment_charges.indemnity_per_invoice,
            "total": s["total"],
            "extra": None if same or not s["indemnity"] else s["indemnity"],
            "margin": s["margin"],
            # invoices settled before the period (a payment loaded late, a dispute rejected since)
            "earlier": any(inv["paid_on"] < s["period_start"] for inv in invoices),
        },
        "invoices": invoices,
        "rates": [{"half_year": h, "reference_rate": r, "annual_rate": a, "margin": s["margin"]} for h, r, a in rates],
    }


def render_pdf(renderer, ctx: dict, path: Path) -> Path:
    """The statement as a PDF (the letter renderer, WeasyPrint): attached to the email, printed for the letter."""
    from tasks.dispatch import post

    name = f"late_charges/{ctx['lang']}/statement.j2"
    ctx = dict(ctx, letter=True)
    blocks = renderer.blocks(renderer.html, name, ctx, ("body", "closing"))
    html = renderer.html.get_template("late_charges/layout.html.j2").render(ctx, **blocks)
    post.render_chunk(post.letter_css(renderer), [(ctx["anchor"], html, str(path))], None)
    return path


def render_drafts(con, as_of: date, folder: Path, cfg, renderer, pol: Policy) -> list[dict]:
    """A draft PDF (marked "draft, not sent") of each live statement dated up to as_of waiting for
    approval, into `folder` (outbox/<as_of>/drafts, beside the formal notices' drafts): what the
    approver reads. Nothing is claimed or recorded."""
    from tasks.dispatch.ledger import file_stem

    if not ledger.table_exists(con, "late_charge_statements"):
        return []
    pending = con.execute(
        """select s.statement_id, min(d.delivery_id) from late_charge_statements s
           join deliveries d on d.action_id = s.statement_id
           where d.status = 'pending_approval' and s.mode = 'live' and s.as_of <= $as_of
           group by s.statement_id order by s.statement_id""",
        {"as_of": as_of},
    ).fetchall()
    written = []
    for statement_id, delivery_id in pending:
        folder.mkdir(parents=True, exist_ok=True)
        ctx = dict(_context(con, statement_id, cfg, renderer, as_of, pol), draft=True)
        path = render_pdf(renderer, ctx, folder / f"{file_stem(statement_id)}.pdf")
        written.append({"action_id": statement_id, "delivery_id": delivery_id, "channel": "letter", "path": str(path)})
    return written


def render_email(renderer, ctx: dict) -> tuple[str, str, str]:
    """(subject, text, html) of the statement's email."""
    from tasks.dispatch.render import f_oneline

    name = f"late_charges/{ctx['lang']}/statement.j2"
    text_blocks = renderer.blocks(renderer.text, name, ctx, ("subject", "body", "closing"))
    html_blocks = renderer.blocks(renderer.html, name, ctx, ("body", "closing"))
    subject = f_oneline(text_blocks["subject"])
    text = renderer.text.get_template("late_charges/layout.txt.j2").render(ctx, **text_blocks)
    html = renderer.html.get_template("late_charges/layout.html.j2").render(ctx, subject=subject, **html_blocks)
    return subject, text.strip() + "\n", html


#: a statement's status from its deliveries once it may be sent (approved, or planned without approval)
SENDABLE = ("planned", "approved", "sent", "partly_sent", "failed")


def refresh_statuses(con) -> int:
    """Say where each live statement is, from its deliveries (the ledger's truth; skipped ones — an
    email replaced by the letter — do not count): `sent` when every delivery is sent; `partly_sent`
    when one is sent and another is not (failed, undeliverable, still to go or in doubt); `failed`
    when none is sent and none is left to send (failed, undeliverable); otherwise it keeps
    `approved` / `planned` (nothing sent yet, something still to go). Only statements that may be
    sent move (pending_approval, rejected and simulated ones keep theirs); a later resolution of a
    delivery (an in-doubt email found sent) moves its statement again. Returns how many moved."""
    moved = con.execute(
        """
        with counted as (
            select
                action_id as statement_id,
                count(*) as n,
                count(*) filter (where status = 'sent') as n_sent,
                count(*) filter (where status in ('failed', 'undeliverable')) as n_failed
            from deliveries
            where action_id in (select statement_id from late_charge_statements where mode = 'live')
              and status <> 'skipped'
            group by action_id
        ),

        judged as (
            select
                statement_id,
                case
                    when n_sent = n then 'sent'
                    when n_sent > 0 then 'partly_sent'
                    when n_failed = n then 'failed'
                end as status
            from counted
        )

        update late_charge_statements as s set status = judged.status
        from judged
        where s.statement_id = judged.statement_id
          and judged.status is not null
          and s.status <> judged.status
          and s.mode = 'live'
          and list_contains($sendable, s.status)
        returning s.statement_id
        """,
        {"sendable": list(SENDABLE)},
    ).fetchall()
    return len(moved)


def send(db: str, as_of: date, outbox: Path, send: bool, now: datetime, cfg, renderer, pol: Policy) -> dict:
    """Render and send the planned deliveries of the live statements dated up to as_of (approved,
    or not needing approval): the email with the PDF attached, the letter's PDF for the print room."""
    from relance.core.errors import UserError
    from tasks.dispatch.base import Run, counts, deliver
    from tasks.dispatch.email import OutgoingEmail, provider_for, write_eml
    from tasks.dispatch.ledger import Result, file_stem

    with warehouse.open_db(db) as con:
        if not ledger.table_exists(con, "late_charge_statements"):
            return {}
        refresh_statuses(con)  # what changed since the last dispatch (a delivery resolved by a person)
        todo = con.execute(
            """select d.delivery_id, d.action_id, d.channel from deliveries d
               join late_charge_statements s on s.statement_id = d.action_id
               where d.status = 'planned' and s.mode = 'live' and s.as_of <= $as_of
               order by d.delivery_id""",
            {"as_of": as_of},
        ).fetchall()
        if not todo:
            return {}
        run = Run(con=con, as_of=as_of, outbox=Path(outbox), send=send, now=now, cfg=cfg, renderer=renderer)
        failures: list[tuple[str, str]] = []
        emails: list[OutgoingEmail] = []
        letters: list[_Letter] = []
        for delivery_id, statement_id, channel in todo:
            try:
                ctx = _context(con, statement_id, cfg, renderer, as_of, pol)
                if channel == "email":
                    folder = run.channel_dir("statements")
                    pdf = render_pdf(renderer, ctx, ledger.fresh_path(folder / f"{file_stem(statement_id)}.pdf"))
                    subject, text, html = render_email(renderer, ctx)
                    emails.append(
                        OutgoingEmail(
                            delivery_id=delivery_id,
                            action_id=statement_id,
                            stage=STAGE,
                            to_email=ctx["customer"]["email"],
                            to_name=ctx["customer"]["name"],
                            subject=subject,
                            text=text,
                            html=html,
                            attachment=(f"{file_stem(statement_id)}.pdf", pdf.read_bytes()),
                            eml_path=run.channel_dir("email") / f"{file_stem(delivery_id)}.eml",
                        )
                    )
                else:
                    letters.append(_Letter(delivery_id, ctx))
            except Exception as e:  # noqa: BLE001 (every failure listed, then nothing is sent)
                failures.append((delivery_id, f"{type(e).__name__}: {e}"))
        if failures:  # a template typo: nothing claimed, everything stays planned for the next run
            raise UserError(
                "statements of late-payment charges do not render, none was sent:\n  "
                + "\n  ".join(f"{d}: {why}" for d, why in failures)
            )
        results = []
        if emails:
            if send:  # the evidence copy of what is handed to SendGrid
                for msg in emails:
                    write_eml(msg, cfg.email, now)
            results += deliver(run, "email", emails, provider_for(run), len(emails))
        if letters:
            results += deliver(run, "letter", letters, _LetterWriter(run, renderer, Result), len(letters))
        refresh_statuses(con)
    return {"sent": counts(results)}


class _Letter:
    def __init__(self, delivery_id: str, ctx: dict):
        self.delivery_id, self.ctx = delivery_id, ctx


class _LetterWriter:
    """A statement letter: its PDF in the outbox's letter folder, for the print room."""

    def __init__(self, run, renderer, result_cls):
        self.run, self.renderer, self.result = run, renderer, result_cls
        self.name = "print" if run.send else "outbox"

    def send(self, batch: list[_Letter]) -> list:
        from tasks.dispatch.ledger import file_stem

        out = []
        folder = self.run.channel_dir("letter")
        for item in batch:
            path = ledger.fresh_path(folder / f"statement-{file_stem(item.delivery_id)}.pdf")
            try:
                render_pdf(self.renderer, item.ctx, path)
            except Exception as e:  # noqa: BLE001
                out.append(self.result(item.delivery_id, "failed", self.name, error=f"PDF not rendered: {e}"))
                continue
            out.append(self.result.file_written(item.delivery_id, self.name, path, self.run.now_naive))
        return out
