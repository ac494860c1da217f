"""recaps: the written recap after a commitment (issue 14, seed 004) and a plan's instalment reminders.

"After a phone call, send a recap email and ask for a confirmation by email." After an outcome
with a commitment — a promise, a plan, a dispute acknowledged — the next dispatch sends the debtor
a recap of what was agreed (amounts, dates, a plan's schedule, the disputed invoices) asking for
confirmation: by email, or by letter when the customer has no usable email address (none,
malformed, or bounced: contact_flags). A plan's on-track instalments get a reminder
`outcomes.instalment_reminder_days` days before their date.

They go through the delivery ledger like every message (`deliveries`, `delivery_events`; claim
committed before the provider is called, tasks/dispatch/base.py `deliver`), keyed by outcome:
    <outcome_id>|recap|<channel>                   the recap
    <outcome_id>|instalment_<n>|<channel>          the reminder of instalment n
so a recap or a reminder is planned once and sent once, never twice, however often dispatch runs.
Their `action_id` is the outcome's id (they belong to no ladder action; the ladder's dispatch
queries join `dunning_actions` and never pick them up).

Only commitments said in the last RECAP_WINDOW_DAYS days get a recap (an old outcome imported
late is not recapped weeks after), and only while they still stand (a promise already broken or
superseded, a plan broken, a dispute resolved: no recap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from relance.core.policy import Policy
from tasks import warehouse
from tasks.dispatch import ledger
from tasks.dispatch.email import OutgoingEmail, provider_for, valid_email, write_eml
from tasks.dispatch.ledger import Result, file_stem
from tasks.dispatch.render import f_oneline, language_of

RECAP_WINDOW_DAYS = 7
STANDING = ("pending", "on_track", "open", "credit_note_expected")


def _planned(con, as_of: date, pol: Policy) -> list[dict[str, Any]]:
    """The recaps and reminders due at as_of, with the customer's contacts."""
    warehouse.run_models(con, ["intermediate/int_outcome_status"], {"as_of": as_of})
    cur = con.execute(
        """
        with due as (
            select s.outcome_id, s.outcome_id || '|recap' as message_key, cast(null as integer) as instalment_no
            from int_outcome_status s
            where s.kind in ('promise', 'plan', 'dispute')
              and s.status in (select unnest($standing::varchar[]))
              and s.said_on >= cast($as_of as date) - $window
            union all
            select s.outcome_id, s.outcome_id || '|instalment_' || i.instalment_no, i.instalment_no
            from int_outcome_status s
            join outcome_instalments i using (outcome_id)
            where s.kind = 'plan' and s.status = 'on_track' and $reminder_days > 0
              and cast($as_of as date) >= i.due_date - $reminder_days
              and cast($as_of as date) < i.due_date
              and s.paid_amount < (select sum(j.amount) from outcome_instalments j
                                   where j.outcome_id = i.outcome_id and j.instalment_no <= i.instalment_no)
        )
        select due.*, c.customer_id, c.name, c.email, c.street, c.postal_code, c.city, c.country, c.language,
               exists (select 1 from contact_flags f
                       where f.customer_id = c.customer_id and f.channel = 'email' and f.flag = 'bad'
                         and (f.address is null or f.address = lower(trim(c.email)))) as email_bad
        from due
        join outcomes o using (outcome_id)
        join stg_customers c on c.customer_id = o.customer_id
        where not exists (select 1 from deliveries d
                          where d.action_id = due.outcome_id and starts_with(d.delivery_id, due.message_key || '|'))
        order by due.message_key
        """,
        {
            "as_of": as_of,
            "window": RECAP_WINDOW_DAYS,
            "standing": list(STANDING),
            "reminder_days": pol.outcomes.instalment_reminder_days,
        },
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def plan(con, as_of: date, pol: Policy, now: datetime) -> dict[str, int]:
    """Write tonight's recap and reminder deliveries (planned, or undeliverable with the reason)."""
    rows = []
    for r in _planned(con, as_of, pol):
        email_ok = valid_email(r["email"]) and not r["email_bad"]
        address_ok = bool((r["street"] or "").strip() and (r["city"] or "").strip())
        channel = "email" if email_ok else "letter"
        status, error = "planned", None
        if not email_ok and not address_ok:
            status, error = "undeliverable", "no usable email address and no postal address for the recap"
        rows.append(
            {
                "delivery_id": f"{r['message_key']}|{channel}",
                "action_id": r["outcome_id"],
                "channel": channel,
                "status": status,
                "last_error": error,
            }
        )
    if not rows:
        return {}
    with warehouse.transaction(con):
        for row in rows:
            con.execute(
                """insert or ignore into deliveries (delivery_id, action_id, channel, status, attempts, last_error,
                                                    created_at, updated_at)
                   values ($delivery_id, $action_id, $channel, $status, 0, $last_error, $now, $now)""",
                {**row, "now": now},
            )
            con.execute(
                """insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
                   values ($delivery_id, $now, $status, null, $channel, null, 'outcomes', $detail)""",
                {
                    "delivery_id": row["delivery_id"],
                    "now": now,
                    "status": row["status"],
                    "channel": row["channel"],
                    "detail": row["last_error"] or "recap of outcome " + row["action_id"],
                },
            )
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


def _context(con, delivery: dict, cfg, renderer, as_of: date) -> dict:
    o = con.execute(
        """select o.outcome_id, o.kind, o.said_on, o.amount, o.promised_date, o.hold_until, o.invoice_ids, o.reason,
                  o.currency, o.recorded_by, c.customer_id, c.name, c.email, c.street, c.postal_code, c.city, c.language
           from outcomes o join stg_customers c using (customer_id) where o.outcome_id = $id""",
        {"id": delivery["action_id"]},
    ).fetchone()
    keys = (
        "outcome_id",
        "kind",
        "said_on",
        "amount",
        "promised_date",
        "hold_until",
        "invoice_ids",
        "reason",
        "currency",
        "recorded_by",
        "customer_id",
        "name",
        "email",
        "street",
        "postal_code",
        "city",
        "language",
    )
    o = dict(zip(keys, o))
    instalments = [
        {"no": n, "due_date": d, "amount": a}
        for n, d, a in con.execute(
            "select instalment_no, due_date, amount from outcome_instalments where outcome_id = $id order by instalment_no",
            {"id": o["outcome_id"]},
        ).fetchall()
    ]
    part = delivery["delivery_id"][len(o["outcome_id"]) + 1 :].split("|")[0]
    reminder = None
    if part.startswith("instalment_"):
        no = int(part.removeprefix("instalment_"))
        reminder = next(i for i in instalments if i["no"] == no)
    lang = language_of(o["language"])
    return {
        "lang": lang,
        "currency": o["currency"] or "EUR",
        "t": renderer.labels(lang),
        "today": as_of,
        "creditor": cfg.creditor.model_dump(),
        "reminder": reminder,
        "letter": False,
        "anchor": "R0",
        "customer": {
            "id": o["customer_id"],
            "name": o["name"],
            "email": o["email"],
            "street": o["street"] or "",
            "postal_code": o["postal_code"] or "",
            "city": o["city"] or "",
        },
        "outcome": {
            "kind": o["kind"],
            "said_on": o["said_on"],
            "amount": o["amount"],
            "promised_date": o["promised_date"],
            "hold_until": o["hold_until"],
            "invoices": list(o["invoice_ids"] or []),
            "reason": o["reason"],
            "instalments": instalments,
        },
    }


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


def render(renderer, ctx: dict) -> Rendered:
    name = f"recap/{ctx['lang']}/recap.j2"
    text_blocks = renderer.blocks(renderer.text, name, ctx, ("subject", "body", "closing"))
    html_blocks = renderer.blocks(renderer.html, name, ctx, ("body", "closing"))
    subject = f_oneline(text_blocks["subject"])
    text = renderer.text.get_template("recap/layout.txt.j2").render(ctx, **text_blocks)
    html = renderer.html.get_template("recap/layout.html.j2").render(ctx, subject=subject, **html_blocks)
    return Rendered(subject, text.strip() + "\n", html)


def send(db: str, as_of: date, outbox: Path, send: bool, now: datetime, cfg, renderer, pol: Policy) -> dict:
    """Plan tonight's recaps and reminders, then send every planned one (email, then letters)."""
    from tasks.dispatch import post
    from tasks.dispatch.base import Run, counts, deliver, fail_before_claim

    stamp = ledger.naive_utc(now)
    with warehouse.open_db(db) as con:
        if not ledger.table_exists(con, "outcomes"):
            return {}
        planned = plan(con, as_of, pol, stamp)
        todo = [
            dict(zip(("delivery_id", "action_id", "channel"), r))
            for r in con.execute(
                """select delivery_id, action_id, channel from deliveries
                   where status = 'planned' and action_id in (select outcome_id from outcomes)
                   order by delivery_id"""
            ).fetchall()
        ]
        if not todo:
            return {"planned": planned} if planned else {}
        run = Run(con=con, as_of=as_of, outbox=Path(outbox), send=send, now=now, cfg=cfg, renderer=renderer)
        failures: list[tuple[str, str]] = []
        emails: list[OutgoingEmail] = []
        letters: list[tuple[dict, Rendered, dict]] = []
        for d in todo:
            try:
                ctx = _context(con, d, cfg, renderer, as_of)
                rendered = render(renderer, ctx)
            except Exception as e:
                failures.append((d["delivery_id"], f"rendering failed: {type(e).__name__}: {e}"))
                continue
            if d["channel"] == "email":
                emails.append(
                    OutgoingEmail(
                        delivery_id=d["delivery_id"],
                        action_id=d["action_id"],
                        stage="instalment_reminder" if ctx["reminder"] else "recap",
                        to_email=ctx["customer"]["email"],
                        to_name=ctx["customer"]["name"],
                        subject=rendered.subject,
                        text=rendered.text,
                        html=rendered.html,
                        eml_path=run.channel_dir("email") / f"{file_stem(d['delivery_id'])}.eml",
                    )
                )
            else:
                letters.append((d, rendered, ctx))
        results = fail_before_claim(run, failures)
        if emails:
            provider = provider_for(run)
            if send:  # the evidence copy of what is handed to SendGrid
                for msg in emails:
                    write_eml(msg, cfg.email, now)
            results += deliver(
                run, "email", emails, provider, max(1, cfg.email.concurrency * 4) if send else len(emails)
            )
        if letters:
            results += deliver(
                run,
                "letter",
                [_Letter(d, r, c) for d, r, c in letters],
                _LetterWriter(run, renderer, post),
                len(letters),
            )
    return {"planned": planned, "sent": counts(results)}


class _Letter:
    def __init__(self, delivery: dict, rendered: Rendered, ctx: dict):
        self.delivery_id, self.rendered, self.ctx = delivery["delivery_id"], rendered, ctx


class _LetterWriter:
    """A recap letter: one PDF in the outbox's letter folder, for the print room."""

    def __init__(self, run, renderer, post):
        self.run, self.renderer, self.post = run, renderer, post
        self.name = "print" if run.send else "outbox"

    def send(self, batch: list[_Letter]) -> list[Result]:
        out = []
        folder = self.run.channel_dir("letter")
        for item in batch:
            path = ledger.fresh_path(folder / f"recap-{file_stem(item.delivery_id)}.pdf")
            ctx = dict(item.ctx, letter=True, anchor="R0")
            html = self.renderer.html.get_template("recap/layout.html.j2").render(
                ctx,
                subject=item.rendered.subject,
                **self.renderer.blocks(self.renderer.html, f"recap/{ctx['lang']}/recap.j2", ctx, ("body", "closing")),
            )
            try:
                self.post.render_chunk(self.post.letter_css(self.renderer), [("R0", html, str(path))], None)
            except Exception as e:
                out.append(
                    Result(item.delivery_id, "failed", self.name, error=f"PDF not rendered: {type(e).__name__}: {e}")
                )
                continue
            out.append(Result.file_written(item.delivery_id, self.name, path, self.run.now_naive))
        return out
