"""handoff: a dossier folder per debtor (unit) for a bailiff, a collection agency or the court.

outbox/<as_of>/handoff/<customer_id>-<currency>-<hash>/  (ledger.unit_stem: collision-free)
    summary.pdf, summary.html  who, what is owed: principal, late-payment interest and indemnity
                               (as of the day the dossier is handed over), invoices, the steps
                               really taken (date, channel, sending id or print batch, tracking
                               number), letters sent — every label in the creditor's language
    invoices.csv               the invoices claimed (ISO dates, '.' decimals, per-invoice charges)
    actions.csv                every real (not simulated) delivery of the unit's actions (status,
                               provider message id, print batch, tracking number, sent at, file;
                               what the provider proved, a registered letter's receipt date
                               and the deadline it starts)
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
from tasks.dispatch.worklists import csv_safe, history_by_unit


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
        self.name, self.dossiers, self.css, self.parts_dir, self.cfg, self.now = (
            name,
            dossiers,
            css,
            parts_dir,
            cfg,
            now,
        )

    def send(self, batch) -> list[Result]:
        out: list[Result] = []
        jobs = []
        for item in batch:
            d = self.dossiers[item.delivery_id]
            folder: Path = d["folder"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.html").write_text(
                post.document_html(self.css, [d["section"]], title="dossier"), encoding="utf-8"
            )
            _write_csv(folder / "invoices.csv", INVOICE_COLUMNS, d["invoices_csv"])
            _write_csv(folder / "actions.csv", ACTION_COLUMNS, d["actions_csv"])
            for kind, files in (("letters", d["letters"]), ("emails", d["emails"])):
                for src, name in files:
                    (folder / kind).mkdir(exist_ok=True)
                    shutil.copy2(src, folder / kind / name)
            jobs.append((d["anchor"], d["section"], str(folder / "summary.pdf")))
        pages, parts, errors = post.render_many(
            self.css,
            jobs,
            None,
            chunk_size=self.cfg.chunk_size,
            processes=self.cfg.processes,
            parallel_from=self.cfg.parallel_from,
        )
        for item in batch:
            d = self.dossiers[item.delivery_id]
            if d["anchor"] in errors:
                out.append(Result(item.delivery_id, "failed", self.name, error=errors[d["anchor"]]))
            else:
                out.append(Result.file_written(item.delivery_id, self.name, d["folder"], self.now))
        return out


INVOICE_COLUMNS = [
    "invoice_id",
    "kind",
    "issue_date",
    "due_date",
    "amount",
    "open_amount",
    "days_past_due",
    "interest",
    "indemnity",
    "currency",
]
#: actions.csv: one row per delivery of a real step (codes, for machines; the summary has the words).
#: The dossier's own delivery is written as `sent` at the time the dossier is written.
ACTION_COLUMNS = [
    "as_of",
    "action_id",
    "stage",
    "amount_due",
    "charges_total",
    "action_status",
    "decided_by",
    "delivery_id",
    "channel",
    "delivery_status",
    "provider",
    "provider_message_id",
    "print_batch",
    "tracking_number",
    "sent_at",
    "file",
    "delivery_state",
    "received_on",
    "deadline_on",  # proof of receipt (relance post import)
    "return_reason",
]  # refused / unclaimed: received_on is the first presentation


def print_records(outbox: Path) -> dict[str, dict]:
    """delivery_id → {"print_batch", "tracking_number"} from every print manifest of the outbox
    (outbox/<date>/<letter|registered_letter>/manifest-*.csv; the mail room fills tracking_number)."""
    out: dict[str, dict] = {}
    for channel in ("letter", "registered_letter"):
        for manifest in sorted(Path(outbox).glob(f"*/{channel}/manifest-*.csv")):
            batch = manifest.with_name(manifest.name.replace("manifest-", "print-batch-", 1)).with_suffix(".pdf")
            with manifest.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    out[row.get("delivery_id") or ""] = {
                        "print_batch": f"{manifest.parent.parent.name}/{channel}/{batch.name}",
                        "tracking_number": (row.get("tracking_number") or "").strip() or None,
                    }
    return out


def _label(t: dict, group: str, code) -> str:
    """The reader's word for a code (t.stages, t.channels, t.statuses of i18n.yaml); the code only
    when the labels do not know it (a custom stage)."""
    return (t.get(group) or {}).get(code) or str(code or "")


def real_steps(unit: list[dict], own_delivery_id: str, now, prints: dict[str, dict]) -> list[dict]:
    """The unit's history as the dossier lists it: only what really happened (a replay's simulated
    actions and deliveries are left out), the dossier's own delivery counted as sent now (writing
    it is its sending), each with its date, channel, provider id or print batch and tracking number."""
    steps = []
    for h in unit:
        if h.get("action_status") == "simulated":
            continue
        for d in h.get("deliveries") or []:
            status, sent_at = d["status"], d.get("sent_at")
            if d["delivery_id"] == own_delivery_id:
                status, sent_at = "sent", now
            if status == "simulated":
                continue
            printed = prints.get(d["delivery_id"]) or {}
            steps.append(
                {
                    "as_of": h["as_of"],
                    "action_id": h["action_id"],
                    "stage": h["stage"],
                    "amount_due": h["amount_due"],
                    "charges_total": h.get("charges_total"),
                    "action_status": h.get("action_status"),
                    "decided_by": h.get("decided_by"),
                    "delivery_id": d["delivery_id"],
                    "channel": d["channel"],
                    "status": status,
                    "provider": d.get("provider"),
                    "provider_message_id": d.get("provider_message_id")
                    if d["delivery_id"] != own_delivery_id
                    else None,
                    "print_batch": printed.get("print_batch"),
                    "tracking_number": d.get("tracking_number") or printed.get("tracking_number"),
                    "delivery_state": d.get("delivery_state"),
                    "received_on": d.get("received_on"),
                    "deadline_on": d.get("deadline_on"),
                    "return_reason": d.get("return_reason"),
                    "sent_at": sent_at,
                    "artifact_path": d.get("artifact_path"),
                }
            )
    return steps


def run_batch(run, rows: list[dict]) -> dict:
    from tasks.dispatch.base import counts, deliver, fail_before_claim

    folder = run.channel_dir("handoff")
    history = history_by_unit(ledger.query(run.con, "history", {"as_of": run.as_of}))
    prints = print_records(run.outbox)
    lang = run.cfg.creditor.language
    t = run.renderer.labels(lang)
    failures: list[tuple[str, str]] = []
    dossiers: dict[str, dict] = {}
    taken: set[Path] = set()
    for i, row in enumerate(rows):
        try:
            ctx = run.context(row)
            unit = history.get((row["customer_id"], row["currency"]), [])
            steps = real_steps(unit, row["delivery_id"], run.now_naive, prints)
            letters, emails, actions_csv, shown = [], [], [], []
            names: set[str] = set()
            for s in steps:
                actions_csv.append(
                    [
                        _iso(s["as_of"]),
                        s["action_id"],
                        s["stage"],
                        s["amount_due"],
                        s["charges_total"],
                        s["action_status"],
                        s["decided_by"],
                        s["delivery_id"],
                        s["channel"],
                        s["status"],
                        s["provider"],
                        s["provider_message_id"],
                        s["print_batch"],
                        s["tracking_number"],
                        _iso(s["sent_at"]),
                        s["artifact_path"] if s["delivery_id"] != row["delivery_id"] else "",
                        s["delivery_state"],
                        _iso(s["received_on"]),
                        _iso(s["deadline_on"]),
                        s["return_reason"],
                    ]
                )
                shown.append(
                    {
                        "date": s["sent_at"] or s["as_of"],
                        "stage": _label(t, "stages", s["stage"]),
                        "channel": _label(t, "channels", s["channel"]),
                        "status": _label(t, "statuses", s["status"]),
                        "amount_due": s["amount_due"],
                        "provider_ref": s["print_batch"] or s["provider_message_id"],
                        "tracking": s["tracking_number"],
                    }
                )
                path = s["artifact_path"]
                if s["status"] != "sent" or not path or s["delivery_id"] == row["delivery_id"]:
                    continue
                name = f"{_iso(s['as_of'])}-{s['stage']}-{s['channel']}{Path(path).suffix}"
                if name in names:  # two copies of one day, stage and channel: each keeps its own file
                    name = f"{Path(name).stem}-{ledger.short_hash(s['delivery_id'])}{Path(path).suffix}"
                names.add(name)
                entry = {
                    "sent_at": s["sent_at"] or s["as_of"],
                    "stage": _label(t, "stages", s["stage"]),
                    "channel": _label(t, "channels", s["channel"]),
                    "file": None,
                }
                if Path(path).is_file():
                    entry["file"] = (
                        f"{'letters' if s['channel'] in ('letter', 'registered_letter') else 'emails'}/{name}"
                    )
                    if s["channel"] in ("letter", "registered_letter"):
                        letters.append((path, name))
                    elif s["channel"] == "email":
                        emails.append((path, name))
                if s["channel"] in ("letter", "registered_letter", "email"):
                    ctx.setdefault("letters", []).append(entry)
            ctx.setdefault("letters", [])
            # the dossier speaks the creditor's language (ctx keeps the customer's values)
            page_ctx = dict(ctx, lang=lang, t=t, anchor=f"D{i}", steps=shown)
            section = run.renderer.page("handoff/summary.html.j2", page_ctx)
            target = folder / ledger.unit_stem(row["customer_id"], row["currency"])
            if target.exists() or target in taken:  # a second dossier for the unit: keep the first
                n = 2
                while (
                    target.with_name(f"{target.name}-{n}").exists() or target.with_name(f"{target.name}-{n}") in taken
                ):
                    n += 1
                target = target.with_name(f"{target.name}-{n}")
            taken.add(target)
            dossiers[row["delivery_id"]] = {
                "folder": target,
                "anchor": f"D{i}",
                "section": section,
                "letters": letters,
                "emails": emails,
                "actions_csv": actions_csv,
                "invoices_csv": [
                    [
                        inv["number"],
                        inv["kind"],
                        _iso(inv["issue_date"]),
                        _iso(inv["due_date"]),
                        inv["amount"],
                        inv["open_amount"],
                        inv["days_past_due"],
                        inv["interest"] if inv["interest"] is not None else "",
                        inv["indemnity"] if inv["indemnity"] is not None else "",
                        ctx["currency"],
                    ]
                    for inv in ctx["invoices"]
                ],
            }
        except Exception as e:
            failures.append((row["delivery_id"], f"dossier not prepared: {type(e).__name__}: {e}"))
    results = fail_before_claim(run, failures)
    css = (run.renderer.dir / "handoff" / "summary.css").read_text(encoding="utf-8")
    writer = DossierWriter(
        "dossier" if run.send else "outbox", dossiers, css, folder / ".parts", run.cfg.letters, run.now_naive
    )

    class _Item:
        def __init__(self, d):
            self.delivery_id = d

    results += deliver(run, "handoff", [_Item(d) for d in dossiers], writer, chunk_size=max(1, len(dossiers)))
    return {"counts": counts(results)}
