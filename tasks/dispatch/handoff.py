"""handoff: a dossier folder per debtor (unit) for a bailiff, a collection agency or the court.

outbox/<as_of>/handoff/<customer_id>-<currency>/
    summary.pdf, summary.html  who, what is owed: principal, late-payment interest and indemnity
                               (as the escalation computed them), invoices, history, letters sent
    invoices.csv               the invoices claimed (ISO dates, '.' decimals, per-invoice charges)
    actions.csv                every action of the unit and each of its deliveries (status,
                               provider message id, sent at, file; what the provider proved, and a
                               registered letter's tracking number, receipt date and the deadline
                               it starts)
    letters/                   copies of the letters' PDFs already sent
    emails/                    copies of the emails (.eml) already sent
The summary is in the creditor's language (templates/handoff/summary.html.j2).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from tasks.dispatch import ledger, post
from tasks.dispatch.ledger import Result
from tasks.dispatch.worklists import _history_by_unit, csv_safe


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([csv_safe(v) for v in row])


def _iso(value) -> str:
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class DossierWriter:
    def __init__(self, name: str, dossiers: dict[str, dict], css: str, parts_dir: Path, cfg, now):
        self.name, self.dossiers, self.css, self.parts_dir, self.cfg, self.now = name, dossiers, css, parts_dir, cfg, now

    def send(self, batch) -> list[Result]:
        out: list[Result] = []
        jobs = []
        for item in batch:
            d = self.dossiers[item.delivery_id]
            folder: Path = d["folder"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.html").write_text(post.document_html(self.css, [d["section"]], title="dossier"), encoding="utf-8")
            _write_csv(folder / "invoices.csv", INVOICE_COLUMNS, d["invoices_csv"])
            _write_csv(folder / "actions.csv", ACTION_COLUMNS, d["actions_csv"])
            for kind, files in (("letters", d["letters"]), ("emails", d["emails"])):
                for src, name in files:
                    (folder / kind).mkdir(exist_ok=True)
                    shutil.copy2(src, folder / kind / name)
            jobs.append((d["anchor"], d["section"], str(folder / "summary.pdf")))
        pages, parts, errors = post.render_many(self.css, jobs, None, chunk_size=self.cfg.chunk_size,
                                                processes=self.cfg.processes, parallel_from=self.cfg.parallel_from)
        for item in batch:
            d = self.dossiers[item.delivery_id]
            if d["anchor"] in errors:
                out.append(Result(item.delivery_id, "failed", self.name, error=errors[d["anchor"]]))
            else:
                out.append(Result(item.delivery_id, "sent", self.name, provider_message_id=f"{self.name}:{item.delivery_id}",
                                  artifact_path=str(d["folder"]), sent_at=self.now))
        return out


INVOICE_COLUMNS = ["invoice_id", "kind", "issue_date", "due_date", "amount", "open_amount", "days_past_due",
                   "interest", "indemnity", "currency"]
ACTION_COLUMNS = ["as_of", "action_id", "stage", "amount_due", "charges_total", "action_status", "decided_by",
                  "delivery_id", "channel", "delivery_status", "provider", "provider_message_id", "sent_at", "file",
                  "delivery_state", "tracking_number", "received_on", "deadline_on"]  # proof of receipt (relance post import)


def run_batch(run, rows: list[dict]) -> dict:
    from tasks.dispatch.base import counts, deliver, fail_before_claim

    folder = run.channel_dir("handoff")
    history = _history_by_unit(ledger.query(run.con, "history", {"as_of": run.as_of}))
    lang = run.cfg.creditor.language
    t = run.renderer.labels(lang)
    failures: list[tuple[str, str]] = []
    dossiers: dict[str, dict] = {}
    taken: set[Path] = set()
    for i, row in enumerate(rows):
        try:
            ctx = run.context(row)
            unit = history.get((row["customer_id"], row["currency"]), [])
            letters, emails, actions_csv = [], [], []
            for h in unit:
                for d in h.get("deliveries") or []:
                    actions_csv.append([
                        _iso(h["as_of"]), h["action_id"], h["stage"], h["amount_due"], h.get("charges_total"),
                        h.get("action_status"), h.get("decided_by"), d["delivery_id"], d["channel"], d["status"],
                        d.get("provider"), d.get("provider_message_id"), _iso(d.get("sent_at")), d.get("artifact_path"),
                        d.get("delivery_state"), d.get("tracking_number"), _iso(d.get("received_on")), _iso(d.get("deadline_on")),
                    ])
                    path = d.get("artifact_path")
                    if d["status"] != "sent" or not path:
                        continue
                    name = f"{_iso(h['as_of'])}-{h['stage']}-{d['channel']}{Path(path).suffix}"
                    entry = {"sent_at": d.get("sent_at") or h["as_of"], "stage": h["stage"], "channel": d["channel"],
                             "file": None}
                    if Path(path).is_file():
                        entry["file"] = f"{'letters' if d['channel'] in ('letter', 'registered_letter') else 'emails'}/{name}"
                        if d["channel"] in ("letter", "registered_letter"):
                            letters.append((path, name))
                        elif d["channel"] == "email":
                            emails.append((path, name))
                    if d["channel"] in ("letter", "registered_letter", "email"):
                        ctx.setdefault("letters", []).append(entry)
            ctx.setdefault("letters", [])
            # the dossier speaks the creditor's language (ctx keeps the customer's values)
            page_ctx = dict(ctx, lang=lang, t=t, anchor=f"D{i}", history=unit)
            section = run.renderer.page("handoff/summary.html.j2", page_ctx)
            target = folder / f"{ledger.safe_name(row['customer_id'])}-{ledger.safe_name(row['currency'])}"
            if target.exists() or target in taken:  # a second dossier for the unit: keep the first
                n = 2
                while target.with_name(f"{target.name}-{n}").exists() or target.with_name(f"{target.name}-{n}") in taken:
                    n += 1
                target = target.with_name(f"{target.name}-{n}")
            taken.add(target)
            dossiers[row["delivery_id"]] = {
                "folder": target, "anchor": f"D{i}", "section": section, "letters": letters, "emails": emails,
                "actions_csv": actions_csv,
                "invoices_csv": [[inv["number"], inv["kind"], _iso(inv["issue_date"]), _iso(inv["due_date"]), inv["amount"],
                                  inv["open_amount"], inv["days_past_due"], inv["interest"] if inv["interest"] is not None else "",
                                  inv["indemnity"] if inv["indemnity"] is not None else "", ctx["currency"]]
                                 for inv in ctx["invoices"]],
            }
        except Exception as e:
            failures.append((row["delivery_id"], f"dossier not prepared: {type(e).__name__}: {e}"))
    results = fail_before_claim(run, failures)
    css = (run.renderer.dir / "handoff" / "summary.css").read_text(encoding="utf-8")
    writer = DossierWriter("dossier" if run.send else "outbox", dossiers, css, folder / ".parts", run.cfg.letters, run.now_naive)

    class _Item:
        def __init__(self, d):
            self.delivery_id = d

    results += deliver(run, "handoff", [_Item(d) for d in dossiers], writer, chunk_size=max(1, len(dossiers)))
    return {"counts": counts(results)}
