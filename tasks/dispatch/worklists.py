"""phone and visit: one worklist per collector and run (CSV and HTML), highest priority first.

Priority is the expected recoverable amount: Σ over the invoices the action claims of
open amount × chance of recovery at the invoice's age. The chance falls with days past due along
a piecewise-linear curve through the points of `worklists.recovery_curve` in
templates/channels.yaml — by default (0 d, 100 %), (90 d, 90 %), (365 d, 10 %), flat at 10 %
afterwards — the articles' "90 % recoverable within 3 months after the due date, 10 % after a
year". A big, recent debt comes first; an old one weighs less because less of it will come back.
Ties: larger total first, then customer id.

Each entry carries the customer's contacts, the invoices, the unit's history of actions (with
each delivery's channel and status) and a call or visit script from
templates/worklists/<lang>/<stage>.j2 in the customer's language. Customers without a collector
go to the worklist named by `worklists.unassigned`.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Sequence

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
        self.name, self.csv_path, self.html_path, self.render_html, self.now = name, csv_path, html_path, render_html, now
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
            Result(e["delivery_id"], "sent", self.name, provider_message_id=f"{self.name}:{e['delivery_id']}",
                   artifact_path=str(self.html_path), sent_at=self.now)
            for e in entries
        ]


CSV_COLUMNS = [
    "rank", "priority", "collector", "customer_id", "name", "phone", "email", "address", "country",
    "stage", "currency", "total_due", "invoices", "history", "script", "delivery_id", "action_id", "outcome",
]


def run_batch(run, rows: list[dict], channel: str) -> dict:
    """One collector's deliveries of one channel (phone or visit)."""
    from tasks.dispatch.base import counts, deliver, fail_before_claim

    cfg = run.cfg.worklists
    collector = (rows[0].get("collector") if rows else None) or cfg.unassigned
    history = history_by_unit(ledger.query(run.con, "history", {"as_of": run.as_of}))
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
        unit_history = [h for h in history.get((row["customer_id"], row["currency"]), [])]
        invoices = ctx["invoices"]
        address = ", ".join(x for x in (ctx["customer"]["street"], f"{ctx['customer']['postal_code']} {ctx['customer']['city']}".strip()) if x)
        entries.append({
            "delivery_id": row["delivery_id"], "action_id": row["action_id"], "customer": ctx["customer"],
            "currency": ctx["currency"], "stage": row["stage"], "invoices": invoices, "total": ctx["total"],
            "charges": ctx["charges"], "history": unit_history, "script": script,
            "priority": priority(invoices, cfg.recovery_curve),  # days late as of tonight already
            "address": address,
        })
    entries.sort(key=lambda e: (-e["priority"], -Decimal(str(e["total"])), str(e["customer"]["id"])))
    for rank, e in enumerate(entries, start=1):
        e["rank"] = rank
        e["csv"] = [
            rank, f"{e['priority']:.2f}", collector, e["customer"]["id"], e["customer"]["name"], e["customer"]["phone"] or "",
            e["customer"]["email"] or "", e["address"], e["customer"]["country"], e["stage"], e["currency"],
            f"{Decimal(str(e['total'])):.2f}",
            "; ".join(f"{i['number']} due {i['due_date'].isoformat()} open {i['open_amount']:.2f} ({i['days_past_due']} d)" for i in e["invoices"]),
            "; ".join(f"{h['as_of'].isoformat()} {h['stage']} [{h['channels']}]" for h in e["history"]),
            e["script"], e["delivery_id"], e["action_id"], "",
        ]
    results = fail_before_claim(run, failures)
    folder = run.channel_dir(channel)
    csv_path = ledger.fresh_path(folder / f"worklist-{ledger.file_stem(collector)}.csv")
    html_path = csv_path.with_suffix(".html")
    i18n = run.renderer.labels(creditor_lang)
    curve = ", ".join(f"{d} d → {p:.0%}" for d, p in cfg.recovery_curve)

    def render_html(items: list[dict]) -> str:
        return run.renderer.page("worklists/worklist.html.j2", {
            "lang": creditor_lang, "t": i18n, "currency": "EUR", "collector": collector,
            "title": i18n["worklist"] if channel == "phone" else i18n["visit_list"],
            "script_title": i18n["script"] if channel == "phone" else i18n["visit_script"],
            "run_date": run.as_of, "creditor": run.cfg.creditor.model_dump(), "entries": items,
            "curve_note": curve,
        })

    writer = WorklistWriter({"phone": "worklist", "visit": "worklist"}[channel] if run.send else "outbox",
                            csv_path, html_path, render_html, run.now_naive)
    writer.entries = {e["delivery_id"]: e for e in entries}

    class _Item:
        def __init__(self, d):
            self.delivery_id = d

    results += deliver(run, channel, [_Item(e["delivery_id"]) for e in entries], writer, chunk_size=max(1, len(entries)))
    return {"counts": counts(results), "worklist": str(csv_path), "collector": collector}
