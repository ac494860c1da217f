"""The report step (HTML, PDF and Excel of as_of into a folder) and the Prefect artifacts of a run."""

from __future__ import annotations

import csv
import time
from datetime import date, timedelta
from pathlib import Path

from relance.core.pdf import PdfJob
from relance.core.policy import load_policy
from tasks.report.data import _open_read_only, credit_watch_csv_name, gather, next_step, outcome_metrics
from tasks.report.format import Fmt
from tasks.report.page import TOP_DEBTORS, render_html
from tasks.report.workbook import write_workbook
from tasks.step import get_logger, in_flow_run, step

#: Rows of the workbook's longest sheets (aged balance, debtors, credit watch) from which the PDF is
#: laid out in a background process beside the workbook (below it, starting a process costs more)
PDF_BACKGROUND_FROM = 20_000


def report_paths(out: str | Path, as_of: date) -> dict[str, str]:
    out = Path(out)
    stem = f"relance-report-{as_of.isoformat()}"
    return {"html": str(out / f"{stem}.html"), "pdf": str(out / f"{stem}.pdf"), "xlsx": str(out / f"{stem}.xlsx")}


@step(name="report")
def report(db: str, as_of: date, out: str, language: str = "fr", policy: str | None = None) -> dict:
    """Write the finance report of as_of into `out`: HTML, PDF and Excel; returns their paths."""
    log = get_logger()
    started = time.perf_counter()
    pol = load_policy(policy)
    fmt = Fmt(language, pol)
    Path(out).mkdir(parents=True, exist_ok=True)
    paths = report_paths(out, as_of)
    timings = {}
    with _open_read_only(db) as con:
        data = gather(con, as_of, pol, db=db, language=language)
    timings["read"] = time.perf_counter() - started
    t = time.perf_counter()
    page = render_html(data, pol, fmt)
    Path(paths["html"]).write_text(page, encoding="utf-8")
    timings["html"] = time.perf_counter() - t
    # a big report lays its PDF out in a second process while the workbook is written (relance/core/pdf.py)
    t = time.perf_counter()
    background = len(data.aged) + len(data.debtors) + len(data.watched) >= PDF_BACKGROUND_FROM
    with PdfJob(page, paths["pdf"], Path(out).resolve(), background=background) as pdf:
        timings["pdf"] = time.perf_counter() - t
        t = time.perf_counter()
        write_workbook(Path(paths["xlsx"]), data, pol, fmt)
        timings["xlsx"] = time.perf_counter() - t
        t = time.perf_counter()
        pdf.wait()
        timings["pdf_wait"] = time.perf_counter() - t
    if data.watched:
        paths["credit_watch_csv"] = str(write_credit_watch_csv(Path(out) / credit_watch_csv_name(as_of), data.watched))
    result = {
        **paths,
        "as_of": as_of.isoformat(),
        "language": language,
        "currencies": data.currencies,
        "debtors": len(data.debtors),
        "seconds": round(time.perf_counter() - started, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    log.info("report: %s (%s, %.1f s)", paths["html"], ", ".join(data.currencies) or "no data", result["seconds"])
    return result


#: The columns of the credit-watch CSV: codes and plain numbers (for the ERP or a sales team's
#: import), not the report's words — reasons are credit_watch.reasons (class, overdue, plan).
CREDIT_WATCH_CSV_COLUMNS = [
    "customer_id",
    "name",
    "currency",
    "risk_class",
    "score",
    "reasons",
    "overdue_amount",
    "max_days_past_due",
    "broken_promises",
    "disputes",
]


def write_credit_watch_csv(path: Path, watched: list[dict]) -> Path:
    """The whole credit watch of the report's date, largest overdue first per currency (UTF-8,
    amounts with a dot and two decimals). Written to a .tmp file, then moved over `path`."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CREDIT_WATCH_CSV_COLUMNS)
        for r in watched:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in CREDIT_WATCH_CSV_COLUMNS])
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------ Prefect artifacts
def artifact_content(db: str, as_of: date, report_paths: dict, language: str = "en", policy: str | None = None) -> dict:
    """The markdown summary and the top-debtor table of as_of, as plain strings (no Decimal, no date)."""
    pol = load_policy(policy)
    fmt = Fmt(language, pol)
    with _open_read_only(db) as con:
        data = gather(con, as_of, pol, db=db, language=language)
    lines = [f"# relance — {as_of.isoformat()}", ""]
    if data.freshness and data.freshness["stale"]:
        lines += [
            "**STALE SOURCE: "
            + (
                "planned and sent anyway (--allow-stale)"
                if data.freshness["allow_stale"]
                else "no contact planned, nothing sent"
            )
            + "** — "
            + "; ".join(data.freshness["reasons"]),
            "",
        ]
    if not data.currencies:
        lines.append("No data for this date.")
    for cur in data.currencies:

        def v(metric: str, dim: str = "all", val: str = "all"):
            return data.metrics.get((cur, metric, dim, val))  # noqa: B023 (used within the iteration)

        def money(x):
            return f"{x:.2f} {cur}" if x is not None else "—"  # noqa: B023 (used within the iteration)

        def pct(x):
            return f"{x:.1f} %" if x is not None else "—"

        def days(x):
            return f"{x:.1f} d" if x is not None else "—"

        lines += [
            f"## {cur}",
            "",
            "| metric | value |",
            "|---|---:|",
            f"| open receivables | {money(v('open_ar'))} |",
            f"| overdue | {money(v('overdue_ar'))} |",
            f"| collected, last 30 days | {money(v('collected_30d'))} |",
            f"| DSO 90 d (best possible) | {days(v('dso_90d'))} ({days(v('best_possible_dso_90d'))}) |",
            f"| CEI 30 d | {pct(v('cei_30d'))} |",
            f"| recovered within 30 d of a reminder | {pct(v('recovery_rate_30d'))} |",
            f"| overdue on hold | {pct(v('overdue_held_share'))} |",
            f"| actions today | {int(v('actions_of_day') or 0)} |",
            "",
        ]
    need = {}
    for r in data.attention:
        need[r["kind"]] = need.get(r["kind"], 0) + 1
    rejected = sum(r["rows"] for r in data.rejected if r["action"] == "rejected")
    lines += [
        "## Needs a person",
        "",
        f"- formal notices awaiting approval: {need.get('pending_approval', 0)}",
        f"- undeliverable (last 7 days): {need.get('undeliverable', 0)}",
        f"- failed deliveries (last 7 days): {need.get('failed', 0)}",
        f"- deliveries in doubt: {need.get('in_doubt', 0)}",
        f"- waiting for a reference rate: {need.get('missing_reference_rate', 0)}",
        f"- rejected source rows: {rejected}",
        "",
        f"Report: {Path(report_paths.get('html', '')).resolve().as_uri() if report_paths.get('html') else '—'}",
    ]
    table = []
    for cur in data.currencies:
        for r in [d for d in data.debtors if d["currency"] == cur and d["overdue_amount"] > 0][:TOP_DEBTORS]:
            table.append(
                {
                    "customer_id": str(r["customer_id"]),
                    "name": str(r.get("name") or ""),
                    "currency": cur,
                    "overdue": f"{r['overdue_amount']:.2f}",
                    "open": f"{r['open_amount']:.2f}",
                    "oldest_days_past_due": str(r["oldest_days_past_due"]),
                    "stage": fmt.stage(r["current_stage"]) if r.get("current_stage") else "",
                    "next_step": next_step(r, pol, as_of, fmt),
                }
            )
    return {
        "markdown": "\n".join(lines),
        "table": table,
        "outcomes": outcome_rows(data, fmt),
        # the debtor profile of as_of was measured: the credit watch is a table, empty or not
        "credit_watch": credit_watch_rows(data, fmt) if data.risk_classes else None,
        "cash_forecast": cash_forecast_rows(data),
    }


def credit_watch_rows(data, fmt: Fmt) -> list[dict]:
    """The units on the credit watch of as_of (docs/metrics.md "Credit watch"), largest overdue
    first per currency, as plain strings: a table artifact rejects Decimal and date. The reasons in
    words are those of the report (labels.yaml `watch_reasons`, in fmt's language)."""
    return [
        {
            "customer_id": str(r["customer_id"]),
            "name": str(r.get("name") or ""),
            "currency": str(r["currency"]),
            "risk_class": str(r["risk_class"]),
            "score": "" if r["score"] is None else str(r["score"]),
            "reason": fmt.watch_reasons(r["reasons"], r["risk_class"]),
            "overdue": f"{r['overdue_amount']:.2f}",
            "oldest_days_past_due": "" if r["max_days_past_due"] is None else str(r["max_days_past_due"]),
        }
        for r in data.watched
    ]


def cash_forecast_rows(data) -> list[dict]:
    """The cash expected within 7, 30, 60 and 90 days of as_of per currency (cash_forecast,
    docs/metrics.md "Expected collections"), cumulative, as plain strings."""
    return [
        {
            "currency": str(r["currency"]),
            "within_days": str(r["horizon_days"]),
            "until": (data.as_of + timedelta(days=int(r["horizon_days"]))).isoformat(),
            "expected": f"{r['expected_amount']:.2f}",
            "invoices": str(r["invoice_count"]),
        }
        for r in data.forecast
    ]


def outcome_rows(data, fmt: Fmt) -> list[dict]:
    """The outcome metrics of as_of (promises, disputes, plans, outcomes, cash by last step) as
    plain strings: a table artifact rejects Decimal and date."""
    out = []
    for cur in data.currencies:
        for metric, dimension, code, value in outcome_metrics(data, cur):
            detail, item = fmt.outcome_row(dimension, code)
            out.append(
                {
                    "currency": cur,
                    "metric": fmt.metric_name(metric),
                    "detail": detail,
                    "item": item,
                    "value": fmt.metric_value(metric, value, cur),
                    "number": str(value),
                }
            )
    return out


def publish_artifacts(db: str, as_of: date, report_paths: dict, policy: str | None = None) -> dict:
    """Inside a Prefect flow run: a markdown summary (`relance-summary`), a table of the top
    overdue debtors (`relance-top-debtors`), a table of the outcome metrics (`relance-outcomes`:
    promises, disputes, plans, outcomes, cash by last step; when there are any), the credit watch
    (`relance-credit-watch`: units, class, reason, overdue; when the profile of as_of was measured),
    the expected collections (`relance-cash-forecast`: 7/30/60/90 days per currency; when there
    is a forecast) and a link to the HTML report (`relance-report`).
    The keys are stable, so the Artifacts page shows their history run after run. Outside a flow
    run it does nothing and returns {}."""
    if not in_flow_run():
        return {}
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    content = artifact_content(db, as_of, report_paths, policy=policy)
    ids = {
        "relance-summary": create_markdown_artifact(
            markdown=content["markdown"], key="relance-summary", description=f"relance summary for {as_of.isoformat()}"
        ),
        "relance-top-debtors": create_table_artifact(
            table=content["table"],
            key="relance-top-debtors",
            description=f"the largest overdue debtors on {as_of.isoformat()}, per currency",
        ),
    }
    if content["outcomes"]:
        ids["relance-outcomes"] = create_table_artifact(
            table=content["outcomes"],
            key="relance-outcomes",
            description=f"promises, disputes, plans, outcomes and the cash by last step on {as_of.isoformat()}",
        )
    if content["credit_watch"] is not None:
        ids["relance-credit-watch"] = create_table_artifact(
            table=content["credit_watch"],
            key="relance-credit-watch",
            description=f"the debtors to hold new orders for on {as_of.isoformat()} (class, reason, overdue)",
        )
    if content["cash_forecast"]:
        ids["relance-cash-forecast"] = create_table_artifact(
            table=content["cash_forecast"],
            key="relance-cash-forecast",
            description=f"the cash expected within 7, 30, 60 and 90 days of {as_of.isoformat()}, per currency",
        )
    if report_paths.get("html"):
        ids["relance-report"] = create_link_artifact(
            link=Path(report_paths["html"]).resolve().as_uri(),
            link_text=f"relance report {as_of.isoformat()}",
            key="relance-report",
            description=f"the finance report for {as_of.isoformat()} (HTML)",
        )
    return {k: str(v) for k, v in ids.items()}
