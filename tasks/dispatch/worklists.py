"""phone and visit: one worklist per collector and run (CSV and HTML), highest priority first.

Priority is the expected recoverable amount: Σ over the invoices the action claims of
open amount × chance of recovery at the invoice's age. The chance falls with days past due along
a piecewise-linear curve through the points of `worklists.recovery_curve` in
templates/channels.yaml — by default (0 d, 100 %), (90 d, 90 %), (365 d, 10 %), flat at 10 %
afterwards — the articles' "90 % recoverable within 3 months after the due date, 10 % after a
year". A big, recent debt comes first; an old one weighs less because less of it will come back.
Each promise or payment plan the debtor broke in the last 180 days (`relance outcomes`) multiplies
the chance by `worklists.broken_promise_factor` (0.5 by default). The debtor's payment-behaviour
class (`debtor_profile`, the latest date measured before the run date: docs/metrics.md "Debtor
profile") then weighs the result by `worklists.risk_weights` — by default A 0.8, B 1.0, C 1.25,
D 1.5, and 1.0 for `new` or a unit not profiled yet — so that a debtor that usually pays late
comes before an equal debt, of the same age, of one that pays on time:

    priority = Σ open amount × chance(days past due) × broken_promise_factor ^ broken × weight(class)

(Σ … rounded to the cent first, the product to the cent). Ties: larger total first, then
customer id.

Each entry carries the customer's contacts, the invoices, the unit's history of actions (with
each delivery's channel and status) and a call or visit script from
templates/worklists/<lang>/<stage>.j2 in the customer's language. Customers without a collector
go to the worklist named by `worklists.unassigned`. The last 3 outcomes recorded for the debtor
(promises, plans, disputes and their status) are shown, and the CSV has empty `outcome…` columns for
the collector to fill in and `relance outcomes import` to read back.

Each entry also shows the unit's payment-behaviour class and score, so that a collector knows
whether the debtor usually pays late (CSV columns `risk_class`, `risk_score`; the HTML heading).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from tasks.dispatch import ledger
from tasks.dispatch.ledger import Result


def recovery_chance(days_past_due: int, curve: Sequence[tuple[int, float]]) -> float:
    """Piecewise-linear through the curve's points; flat before the first and after the last."""
    points = sorted(curve)
    if days_past_due <= points[0][0]:
        return points[0][1]
    for (d0, p0), (d1, p1) in zip(points, points[1:]):
        if days_past_due <= d1:
            return p0 + (p1 - p0) * (days_past_due - d0) / (d1 - d0)
    return points[-1][1]


def priority(invoices: Sequence[dict], curve: Sequence[tuple[int, float]], extra_days: int = 0) -> Decimal:
    total = Decimal("0")
    for inv in invoices:
        chance = recovery_chance(int(inv["days_past_due"]) + extra_days, curve)
        total += Decimal(str(inv["open_amount"])) * Decimal(str(round(chance, 6)))
    return total.quantize(Decimal("0.01"))


_FORMULA = re.compile(r"^[=@\t\r]|^[+-](?![\d .]*$)")


def csv_safe(value) -> str:
    """A cell a spreadsheet shows as text: '=…', '@…', '+cmd…' are prefixed with a quote
    (phone numbers like +33… and plain numbers are left alone)."""
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA.match(text) else text


def _profiles(con, as_of, customer_ids: list[str]) -> dict[tuple[str, str], tuple[str, int | None]]:
    """(customer_id, currency) → (risk_class, score) of the latest profile measured before as_of (as
    unit_stage: the same on a re-run of the date), for the batch's customers only."""
    if not customer_ids or not ledger.table_exists(con, "debtor_profile"):
        return {}
    rows = con.execute(
        """
        select customer_id, currency, risk_class, score from debtor_profile
        where as_of = (select max(as_of) from debtor_profile where as_of < $as_of)
          and customer_id in (select unnest($ids::varchar[]))
        """,
        {"as_of": as_of, "ids": customer_ids},
    ).fetchall()
    return {(c, cur): (k, s) for c, cur, k, s in rows}


def broken_promises(con, as_of, customer_ids: list[str]) -> dict[str, int]:
    """Per customer, the promises and plans broken in the 180 days up to as_of (int_outcome_status,
    built by _outcomes_by_customer)."""
    if not customer_ids or not ledger.table_exists(con, "outcomes"):
        return {}
    return dict(
        con.execute(
            """
        select customer_id, count(*) from int_outcome_status
        where status = 'broken' and kind in ('promise', 'plan')
          and coalesce(broken_on, hold_until + 1) > cast($as_of as date) - 180
          and customer_id in (select unnest($ids::varchar[]))
        group by customer_id
        """,
            {"as_of": as_of, "ids": customer_ids},
        ).fetchall()
    )


def _outcomes_by_customer(con, as_of, customer_ids: list[str]) -> dict[str, list[str]]:
    """The last 3 outcomes recorded for each customer by as_of, in words, with the status of each
    promise, plan or dispute (int_outcome_status): "2026-03-06 promise 1000.00 EUR by 2026-03-13
    (broken) — julie" (tasks/outcomes.py)."""
    if not customer_ids or not ledger.table_exists(con, "outcomes"):
        return {}
    from tasks import warehouse

    warehouse.run_model(con, "intermediate/int_outcome_status", {"as_of": as_of})
    rows = con.execute(
        """
        select o.customer_id, o.said_on, o.kind, o.amount, o.currency, o.promised_date, o.invoice_ids, o.reason,
               s.status, o.recorded_by
        from outcomes o
        left join int_outcome_status s using (outcome_id)
        where o.said_on <= $as_of and o.kind <> 'resolution'
          and o.customer_id in (select unnest($ids::varchar[]))
        qualify row_number() over (partition by o.customer_id order by o.said_on desc, o.recorded_at desc) <= 3
        order by o.customer_id, o.said_on desc, o.recorded_at desc
        """,
        {"as_of": as_of, "ids": customer_ids},
    ).fetchall()
    out: dict[str, list[str]] = defaultdict(list)
    for cust, said_on, kind, amount, currency, promised, invoices, reason, status, by in rows:
        parts = [said_on.isoformat(), kind]
        if amount is not None:
            parts.append(f"{amount:.2f} {currency}")
        if promised is not None:
            parts.append(f"by {promised.isoformat()}")
        if invoices:
            parts.append(", ".join(invoices))
        if reason:
            parts.append(f"({reason})")
        if status:
            parts.append(f"[{status}]")
        out[cust].append(" ".join(parts) + f" — {by}")
    return out


def history_by_unit(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for h in rows:
        deliveries = h.get("deliveries") or []
        h = dict(h, channels=", ".join(f"{d['channel']} {d['status']}" for d in deliveries))
        out[(h["customer_id"], h["currency"])].append(h)
    return out


class WorklistWriter:
    """Writes the collector's CSV and HTML; that is the sending of every entry on it."""

    def __init__(self, name: str, csv_path: Path, html_path: Path, render_html, now):
        self.name, self.csv_path, self.html_path, self.render_html, self.now = (
            name,
            csv_path,
            html_path,
            render_html,
            now,
        )
        self.entries: dict[str, dict] = {}

    def send(self, batch) -> list[Result]:
        entries = [self.entries[item.delivery_id] for item in batch]
        with self.csv_path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for e in entries:
                w.writerow([csv_safe(v) for v in e["csv"]])
        self.html_path.write_text(self.render_html(entries), encoding="utf-8")
        return [
            Result(
                e["delivery_id"],
                "sent",
                self.name,
                provider_message_id=f"{self.name}:{e['delivery_id']}",
                artifact_path=str(self.html_path),
                sent_at=self.now,
            )
            for e in entries
        ]


CSV_COLUMNS = [
    "rank",
    "priority",
    "collector",
    "customer_id",
    "name",
    "phone",
    "email",
    "address",
    "country",
    "stage",
    "currency",
    "total_due",
    "invoices",
    "history",
    "last_outcomes",
    "script",
    "delivery_id",
    "action_id",
    "risk_class",
    "risk_score",  # the debtor's payment profile (docs/metrics.md "Debtor profile")
    "outcome",
    # filled in by the collector, read back by `relance outcomes import` (tasks/outcomes.py)
    "outcome_amount",
    "outcome_date",
    "outcome_instalments",
    "outcome_invoices",
    "outcome_reason",
    "outcome_note",
    "outcome_on",
]
#: the empty outcome cells of a new worklist
_OUTCOME_CELLS = [""] * (len(CSV_COLUMNS) - CSV_COLUMNS.index("outcome"))


def run_batch(run, rows: list[dict], channel: str) -> dict:
    """One collector's deliveries of one channel (phone or visit)."""
    from tasks.dispatch.base import counts, deliver, fail_before_claim

    cfg = run.cfg.worklists
    collector = (rows[0].get("collector") if rows else None) or cfg.unassigned
    history = history_by_unit(ledger.query(run.con, "history", {"as_of": run.as_of}))
    customer_ids = sorted({r["customer_id"] for r in rows})
    profiles = _profiles(run.con, run.as_of, customer_ids)
    said = _outcomes_by_customer(run.con, run.as_of, customer_ids)
    broken = broken_promises(run.con, run.as_of, sorted(said))
    creditor_lang = run.cfg.creditor.language
    failures: list[tuple[str, str]] = []
    entries: list[dict] = []
    for row in rows:
        try:
            ctx = run.context(row)
            script = run.renderer.script(ctx)
        except Exception as e:
            failures.append((row["delivery_id"], f"rendering failed: {type(e).__name__}: {e}"))
            continue
        risk = profiles.get((row["customer_id"], row["currency"]), (None, None))
        unit_history = [h for h in history.get((row["customer_id"], row["currency"]), [])]
        invoices = ctx["invoices"]
        address = ", ".join(
            x
            for x in (ctx["customer"]["street"], f"{ctx['customer']['postal_code']} {ctx['customer']['city']}".strip())
            if x
        )
        entries.append(
            {
                "delivery_id": row["delivery_id"],
                "action_id": row["action_id"],
                "customer": ctx["customer"],
                "currency": ctx["currency"],
                "stage": row["stage"],
                "invoices": invoices,
                "total": ctx["total"],
                "charges": ctx["charges"],
                "history": unit_history,
                "script": script,
                # days late as of tonight already; each promise or plan broken lately lowers the chance;
                # the debtor's risk class weighs the result
                "priority": (
                    priority(invoices, cfg.recovery_curve)
                    * Decimal(str(cfg.broken_promise_factor)) ** broken.get(row["customer_id"], 0)
                    * Decimal(str(cfg.risk_weights.of(risk[0])))
                ).quantize(Decimal("0.01")),
                "address": address,
                "outcomes": said.get(row["customer_id"], []),
                "risk": risk,
            }
        )
    entries.sort(key=lambda e: (-e["priority"], -Decimal(str(e["total"])), str(e["customer"]["id"])))
    for rank, e in enumerate(entries, start=1):
        e["rank"] = rank
        e["csv"] = [
            rank,
            f"{e['priority']:.2f}",
            collector,
            e["customer"]["id"],
            e["customer"]["name"],
            e["customer"]["phone"] or "",
            e["customer"]["email"] or "",
            e["address"],
            e["customer"]["country"],
            e["stage"],
            e["currency"],
            f"{Decimal(str(e['total'])):.2f}",
            "; ".join(
                f"{i['number']} due {i['due_date'].isoformat()} open {i['open_amount']:.2f} ({i['days_past_due']} d)"
                for i in e["invoices"]
            ),
            "; ".join(f"{h['as_of'].isoformat()} {h['stage']} [{h['channels']}]" for h in e["history"]),
            "; ".join(e["outcomes"]),
            e["script"],
            e["delivery_id"],
            e["action_id"],
            e["risk"][0] or "",
            "" if e["risk"][1] is None else e["risk"][1],
            *_OUTCOME_CELLS,
        ]
    results = fail_before_claim(run, failures)
    folder = run.channel_dir(channel)
    csv_path = ledger.fresh_path(folder / f"worklist-{ledger.file_stem(collector)}.csv")
    html_path = csv_path.with_suffix(".html")
    i18n = run.renderer.labels(creditor_lang)
    curve = ", ".join(f"{d} d → {p:.0%}" for d, p in cfg.recovery_curve)
    weights = ", ".join(f"{k} {cfg.risk_weights.of(k):g}" for k in ("A", "B", "C", "D", "new"))

    def render_html(items: list[dict]) -> str:
        return run.renderer.page(
            "worklists/worklist.html.j2",
            {
                "lang": creditor_lang,
                "t": i18n,
                "currency": "EUR",
                "collector": collector,
                "title": i18n["worklist"] if channel == "phone" else i18n["visit_list"],
                "script_title": i18n["script"] if channel == "phone" else i18n["visit_script"],
                "run_date": run.as_of,
                "creditor": run.cfg.creditor.model_dump(),
                "entries": items,
                "curve_note": curve,
                "weights_note": weights,
            },
        )

    writer = WorklistWriter(
        {"phone": "worklist", "visit": "worklist"}[channel] if run.send else "outbox",
        csv_path,
        html_path,
        render_html,
        run.now_naive,
    )
    writer.entries = {e["delivery_id"]: e for e in entries}

    class _Item:
        def __init__(self, d):
            self.delivery_id = d

    results += deliver(
        run, channel, [_Item(e["delivery_id"]) for e in entries], writer, chunk_size=max(1, len(entries))
    )
    return {"counts": counts(results), "worklist": str(csv_path), "collector": collector}
