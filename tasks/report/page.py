"""The report's page: the template's context (every figure formatted for the reader, the charts
inline), the self-contained HTML (templates/report/report.html.j2, autoescaped) and its PDF
(WeasyPrint)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from relance.core.policy import Policy
from tasks.report.charts import BUCKET_COLOURS, svg_funnel, svg_hbars, svg_sparkline, svg_stacked_columns
from tasks.report.data import (
    RISK_CLASSES,
    WORKBOOK_WATCHED,
    ReportData,
    credit_watch_csv_name,
    forecast_accuracy,
    next_step,
    outcome_metrics,
    watch_by_currency,
)
from tasks.report.format import REPORT_TEMPLATES, Fmt

TOP_DEBTORS = 20
TREND_METRICS = ("dso_90d", "cei_30d", "overdue_ar", "collected_30d")
ATTENTION_ROWS = 25  # rows listed per kind; the count says how many more
MOVERS = 20  # units whose class changed, listed per currency; the count says how many more
WATCHED = 25  # units on the credit watch listed per currency (largest overdue first); the count says how many more
ZERO = Decimal("0")


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(REPORT_TEMPLATES)),
        autoescape=True,  # customer names and every other value are escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _series(data: ReportData, currency: str, metric: str, dimension: str = "all", value: str = "all"):
    return data.history.get((currency, metric, dimension, value), [])


def _sample(dates: list[date], n: int = 13) -> list[date]:
    if len(dates) <= n:
        return dates
    step_ = (len(dates) - 1) / (n - 1)
    return sorted({dates[round(i * step_)] for i in range(n)})


def outcome_tables(data: ReportData, pol: Policy, fmt: Fmt, currency: str) -> dict:
    """The section "Promises, plans and disputes" of a currency: headline figures and small tables
    (title, header, rows of formatted cells), from the outcome metrics of recovery_metrics."""
    L = fmt.L
    rows = outcome_metrics(data, currency)
    if not rows:
        return {"cards": [], "tables": [], "cash": [], "empty": True, "only_cash": False}
    ranks = {s.code: i for i, s in enumerate(pol.stages)}

    def pick(metric: str, dimension: str) -> list[tuple[str, Decimal]]:
        found = [(code, v) for m, d, code, v in rows if m == metric and d == dimension]
        if dimension == "stage":
            found.sort(key=lambda cv: (cv[0] == "none", ranks.get(cv[0], 99), cv[0]))
        return found

    def one(metric: str) -> Decimal | None:
        found = pick(metric, "all")
        return found[0][1] if found else None

    cards = []
    for name in ("promise_kept_rate_30d", "promise_kept_amount_rate_30d", "promises_broken_30d", "disputes_open"):
        value = one(name)
        if value is not None:
            cards.append({"label": fmt.metric_name(name), "value": fmt.metric_value(name, value, currency)})
    tables = []

    def table(title: str, head: list[str], body: list[list[str]]) -> None:
        if body:
            tables.append({"title": title, "head": head, "rows": body})

    # promises by collector: kept rate and broken count
    kept = dict(pick("promise_kept_rate_30d", "collector"))
    broken = dict(pick("promises_broken_30d", "collector"))
    collectors = sorted(set(kept) | set(broken), key=str.casefold)
    table(
        f"{L['promises']} · {L['by_collector']}",
        [L["col_collector"], L["kept_rate"], L["broken"]],
        [[fmt.outcome_value("collector", c), fmt.pct(kept.get(c)), fmt.num(broken.get(c, 0))] for c in collectors],
    )
    for dimension, title in (("reason", L["by_reason"]), ("age_bucket", L["by_age"])):
        table(
            f"{L['disputes_open']} · {title}",
            [title, L["count"]],
            [[fmt.outcome_value(dimension, c), fmt.num(v)] for c, v in pick("disputes_open", dimension)],
        )
    table(
        L["plans"],
        [L["by_status"], L["count"]],
        [[fmt.outcome_value("status", c), fmt.num(v)] for c, v in pick("plans", "status")],
    )
    for dimension, title in (("kind", L["by_kind"]), ("collector", L["by_collector"])):
        table(
            f"{L['outcomes_30d']} · {title}",
            [title, L["outcomes_count"]],
            [[fmt.outcome_value(dimension, c), fmt.num(v)] for c, v in pick("outcomes_30d", dimension)],
        )
    # outcomes per collector and stage: a collector per row, a stage per column
    grid = {}
    for code, v in pick("outcomes_30d", "collector_stage"):
        collector, _, stage = code.rpartition(":")
        grid[(collector, stage)] = v
    stages = [c for c, _ in pick("outcomes_30d", "stage")]
    people = sorted({c for c, _ in grid}, key=lambda c: (c == "none", c.casefold()))
    table(
        f"{L['outcomes_30d']} · {L['by_collector']}, {L['by_stage'].lower()}",
        [L["col_collector_stage"]] + [fmt.outcome_value("stage", st) for st in stages],
        [
            [fmt.outcome_value("collector", c)] + [fmt.num(grid[(c, st)]) if (c, st) in grid else "" for st in stages]
            for c in people
        ],
    )
    cash = []
    for dimension, title in (("stage", L["by_stage"]), ("channel", L["by_channel"]), ("collector", L["by_collector"])):
        body = [
            [fmt.outcome_value(dimension, c), fmt.money(v, currency)] for c, v in pick("cash_attributed_30d", dimension)
        ]
        if body:
            cash.append({"title": title, "head": [title, L["amount"]], "rows": body})
    only_cash = not cards and not tables
    return {"cards": cards, "tables": tables, "cash": cash, "empty": False, "only_cash": only_cash}


def profile_tables(data: ReportData, fmt: Fmt, currency: str) -> dict:
    """The section "Debtor profiles" of a currency: units and open amount per risk class, the
    credit watch count, and the units whose class changed since the previous measured date (worst
    first, as sql/reports/class_movers.sql orders them)."""
    L = fmt.L
    rows = {r["risk_class"]: r for r in data.risk_classes if r["currency"] == currency}
    if not rows:
        return {
            "empty": True,
            "classes": [],
            "watch_text": "",
            "movers": [],
            "movers_title": "",
            "more": "",
            "watch": [],
            "watch_more": "",
        }
    total_open = sum((r["open_amount"] for r in rows.values()), ZERO)
    total_units = sum(r["units"] for r in rows.values())
    classes = []
    for code in list(RISK_CLASSES) + sorted(set(rows) - set(RISK_CLASSES)):
        r = rows.get(code)
        units, open_amount = (r["units"], r["open_amount"]) if r else (0, ZERO)
        classes.append(
            {
                "risk_class": fmt.term("risk_classes", code),
                "units": fmt.num(units),
                "units_share": fmt.pct(Decimal(units) * 100 / total_units) if total_units else "",
                "open": fmt.money(open_amount, currency),
                "open_share": fmt.pct(open_amount * 100 / total_open) if total_open else "",
                "overdue": fmt.money(r["overdue_amount"] if r else ZERO, currency),
            }
        )
    watched = sum(r["watched_units"] for r in rows.values())
    movers = [r for r in data.movers if r["currency"] == currency]
    previous = movers[0]["previous_as_of"] if movers else None
    # the credit watch, largest overdue first (sql/reports/watched_units.sql orders them)
    watch = watch_by_currency(data.watched).get(currency, [])
    return {
        "empty": False,
        "classes": classes,
        "total_units": fmt.num(total_units),
        "total_open": fmt.money(total_open, currency),
        "watched": watched,
        "watch_text": fmt.count("credit_watch_units", watched),
        "movers": [
            {
                "customer_id": r["customer_id"],
                "name": r.get("name") or r["customer_id"],
                "before": fmt.term("risk_classes", r["previous_class"]),
                "now": fmt.term("risk_classes", r["risk_class"]),
                "score": f"{fmt.num(r['previous_score']) if r['previous_score'] is not None else '—'} → "
                f"{fmt.num(r['score']) if r['score'] is not None else '—'}",
                "open": fmt.money(r["open_amount"], currency),
                "overdue": fmt.money(r["overdue_amount"], currency),
            }
            for r in movers[:MOVERS]
        ],
        "movers_title": L["movers_since"].format(date=fmt.date(previous)) if previous else L["movers"],
        "more": fmt.count("more", len(movers) - MOVERS) if len(movers) > MOVERS else "",
        "watch": [
            {
                "customer_id": r["customer_id"],
                "name": r.get("name") or r["customer_id"],
                "risk_class": fmt.term("risk_classes", r["risk_class"]),
                "score": fmt.num(r["score"]),
                "reasons": fmt.watch_reasons(r["reasons"], r["risk_class"]),
                "overdue": fmt.money(r["overdue_amount"], currency),
                "oldest": fmt.num(r["max_days_past_due"]),
                "broken_promises": fmt.num(r.get("broken_promises")),
                "disputes": fmt.num(r.get("disputes")),
            }
            for r in watch[:WATCHED]
        ],
        "watch_more": _watch_more(watch, data.as_of, fmt),
    }


def forecast_table(data: ReportData, fmt: Fmt, currency: str) -> dict:
    """The section "Expected collections" of a currency: per horizon, what is expected from as_of,
    and beside it the latest earlier forecast of that horizon whose window has passed, with the
    cash collected in its window."""
    L = fmt.L
    now = {r["horizon_days"]: r for r in data.forecast if r["currency"] == currency}
    past = {r["horizon_days"]: r for r in forecast_accuracy(data, currency)}
    rows = []
    for h in sorted(set(now) | set(past)):
        n, p = now.get(h), past.get(h)
        rows.append(
            {
                "horizon": L["horizon"].format(n=fmt.num(h)),
                "expected": fmt.money(n["expected_amount"], currency) if n else "—",
                "invoices": fmt.num(n["invoice_count"]) if n else "",
                "made_on": fmt.date(p["forecast_date"]) if p else "—",
                "was_expected": fmt.money(p["expected_amount"], currency) if p else "",
                "collected": fmt.money(p["collected_amount"], currency) if p else "",
                "ratio": fmt.pct(p["ratio"]) if p and p["ratio"] is not None else "",
            }
        )
    return {"rows": rows, "has_past": bool(past)}


def late_charges_text(data: ReportData, fmt: Fmt, currency: str) -> str | None:
    """The line of the month's statements of late-payment charges (None when there is none)."""
    row = data.late_charges.get(currency)
    if not row:
        return None
    parts = [
        fmt.L[f"late_charges_{key}"].format(n=fmt.num(row[key]))
        for key in ("pending", "sent", "partly_sent", "failed")
        if row.get(key)
    ]
    detail = fmt.L["late_charges_detail"].format(parts=", ".join(parts)) if parts else ""
    return fmt.L["late_charges_month"].format(
        n=fmt.num(row["statements"]), total=fmt.money(row["total"], currency), pending=detail
    )


def build_context(data: ReportData, pol: Policy, fmt: Fmt) -> dict:
    L, as_of = fmt.L, data.as_of
    m = data.metrics
    bucket_series = [
        (fmt.bucket(b), BUCKET_COLOURS[min(i, len(BUCKET_COLOURS) - 1)]) for i, b in enumerate(data.buckets)
    ]

    def recovery_note(first: date | None) -> str:
        """The period the recovery rates measure: the actions dated in (D-120, D-30], from the first
        one there is (a history that starts on 4 Nov is not labelled "from 7 Aug")."""
        window_end = as_of - timedelta(days=30)
        if first is None or first > window_end:
            return ""
        start = max(as_of - timedelta(days=119), first)
        if start == window_end:
            return L["recovery_note_day"].format(date=fmt.date(window_end))
        return L["recovery_note"].format(start=fmt.date(start), end=fmt.date(window_end))

    sections = []
    for cur in data.currencies:

        def metric(name: str, dim: str = "all", val: str = "all") -> Decimal | None:
            return m.get((cur, name, dim, val))  # noqa: B023 (used within the iteration)

        # headline and trends
        cards = []
        for name in (
            "open_ar",
            "overdue_ar",
            "collected_30d",
            "dso_90d",
            "cei_30d",
            "recovery_rate_30d",
            "overdue_held_share",
            "unapplied_credit",
        ):
            value = metric(name)
            series = _series(data, cur, name)
            shown = fmt.metric_value(name, value, cur)
            detail = ""
            if name == "overdue_ar" and value is not None and metric("open_ar"):
                share = (value * 100 / metric("open_ar")).quantize(Decimal("0.1"))
                detail = L["overdue_share"].format(pct=fmt.pct(share))
            if name == "dso_90d" and value is not None:
                detail = L["dso_detail"].format(
                    best=fmt.days(metric("best_possible_dso_90d")), add=fmt.days(metric("add_90d"))
                )
            trend = ""
            if name in TREND_METRICS and len(series) > 1:
                first, last = series[0], series[-1]
                trend = L["trend_from"].format(first=fmt.date(first[0], "d MMM"), last=fmt.date(last[0], "d MMM"))
            cards.append(
                {
                    "label": fmt.metric_name(name),
                    "value": shown,
                    "detail": detail,
                    "spark": svg_sparkline(series) if name in TREND_METRICS and len(series) > 1 else Markup(""),
                    "trend": trend,
                }
            )
        run_dates = sorted({d for (c, *_), pts in data.history.items() if c == cur for d, _ in pts})

        # aged balance: today's table (from aged_balance) and the history (from the metrics)
        aged_rows = [r for r in data.aged if r["currency"] == cur]
        by_bucket: dict[str, list] = {}
        for r in aged_rows:
            slot = by_bucket.setdefault(r["bucket"], [ZERO, 0, set()])
            slot[0] += r["amount"]
            slot[1] += r["invoice_count"]
            slot[2].add(r["customer_id"])
        positive_total = sum((v[0] for k, v in by_bucket.items() if k != "unapplied_credit"), ZERO)
        aged_table = []
        for b in data.buckets:
            amount, count, debtors = by_bucket.get(b, [ZERO, 0, set()])
            aged_table.append(
                {
                    "bucket": fmt.bucket(b),
                    "amount": fmt.money(amount, cur),
                    "share": fmt.pct(amount * 100 / positive_total) if positive_total else "",
                    "invoices": fmt.num(count),
                    "debtors": fmt.num(len(debtors)),
                }
            )
        aged_total = fmt.money(positive_total, cur)
        # the unapplied credit is not netted (contract §5): shown after the total, said to be outside it
        credit, _, credit_debtors = by_bucket.get("unapplied_credit", [ZERO, 0, set()])
        aged_credit = (
            {
                "bucket": L["unapplied_not_in_total"],
                "amount": fmt.money(credit, cur),
                "debtors": fmt.num(len(credit_debtors)),
            }
            if credit
            else None
        )
        columns = []
        for d in _sample(run_dates):
            vals = []
            for b in data.buckets:
                pts = dict(_series(data, cur, "open_ar", "bucket", b))
                vals.append(pts.get(d, ZERO))
            columns.append((fmt.date(d, "d MMM"), vals))
        if not columns and aged_rows:
            columns = [(fmt.date(as_of, "d MMM"), [by_bucket.get(b, [ZERO])[0] for b in data.buckets])]
        aged_chart = svg_stacked_columns(columns, bucket_series, fmt, currency=cur)

        # the ladder
        order = {s.code: i for i, s in enumerate(pol.stages)}
        st = {r["stage"]: r for r in data.stages if r["currency"] == cur}
        funnel_rows = [
            (
                fmt.stage(s.code),
                st[s.code]["units"] if s.code in st else 0,
                f"{fmt.num(st[s.code]['units']) if s.code in st else 0} · {fmt.money(st[s.code]['dunnable'] if s.code in st else ZERO, cur)}",
            )
            for s in pol.stages
        ]
        extra = [r for code, r in st.items() if code not in order]
        funnel_rows += [(fmt.stage(r["stage"]), r["units"], fmt.num(r["units"])) for r in extra]
        funnel = svg_funnel(funnel_rows) if st else Markup("")

        # today's actions
        actions = [
            {"stage": fmt.stage(r["stage"]), "actions": fmt.num(r["actions"]), "amount": fmt.money(r["amount"], cur)}
            for r in data.actions_today
            if r["currency"] == cur
        ]

        # recovery after reminders
        def rates(dimension: str, values: Iterable[str], label) -> list[dict]:
            out = []
            for v in values:
                rate = metric("recovery_rate_30d", dimension, v)
                if rate is None:
                    continue
                n = metric("recovery_actions_30d", dimension, v)
                out.append(
                    {
                        "label": label(v),
                        "rate": fmt.pct(rate),
                        "value": rate,
                        "actions": fmt.num(n) if n is not None else "",
                    }
                )
            return out

        stage_codes = [s.code for s in pol.stages] + sorted(
            {k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "stage"}
            - {s.code for s in pol.stages}
        )
        recovery = {
            "stage": rates("stage", stage_codes, fmt.stage),
            "channel": rates(
                "channel",
                sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "channel"}),
                fmt.channel,
            ),
            "segment": rates(
                "segment",
                sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "segment"}),
                fmt.segment,
            ),
            # real actions apart from replayed ones (a backfill's simulated steps), when measured so
            "mode": rates(
                "mode",
                sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "mode"}),
                fmt.dimension,
            ),
            "all": fmt.pct(metric("recovery_rate_30d")),
        }
        recovery_chart = (
            svg_hbars([(r["label"], [(r["value"], "#2b6cb0")]) for r in recovery["stage"]], [], fmt)
            if recovery["stage"]
            else Markup("")
        )
        age_rows = []
        for b in data.buckets:
            r30, r90 = metric("recovery_by_age_30d", "age_bucket", b), metric("recovery_by_age_90d", "age_bucket", b)
            if r30 is None and r90 is None:
                continue
            age_rows.append((fmt.bucket(b), [(r30, "#90cdf4"), (r90, "#2b6cb0")]))
        age_chart = (
            svg_hbars(
                age_rows,
                [(L["window_30"], "#90cdf4"), (L["window_90"], "#2b6cb0")],
                fmt,
                reference=[(fmt.pct(90, 0), 90.0), (fmt.pct(10, 0), 10.0)],
            )
            if age_rows
            else Markup("")
        )

        # the largest overdue debtors
        top = []
        for r in [d for d in data.debtors if d["currency"] == cur and d["overdue_amount"] > 0][:TOP_DEBTORS]:
            top.append(
                {
                    "customer_id": r["customer_id"],
                    "name": r.get("name") or r["customer_id"],
                    "overdue": fmt.money(r["overdue_amount"], cur),
                    "open": fmt.money(r["open_amount"], cur),
                    "oldest": fmt.num(r["oldest_days_past_due"]),
                    "hold": fmt.hold(r.get("hold_kinds")),
                    "stage": fmt.stage(r.get("current_stage")) if r.get("current_stage") else "—",
                    "next": next_step(r, pol, as_of, fmt),
                    "collector": r.get("collector") or "",
                }
            )
        will = data.will_step.get(cur, {})
        sections.append(
            {
                "currency": cur,
                "cards": cards,
                "run_dates": len(run_dates),
                "trend_title": L["trend"].format(n=len(run_dates)) if len(run_dates) > 1 else "",
                "aged_table": aged_table,
                "aged_total": aged_total,
                "aged_credit": aged_credit,
                "aged_chart": aged_chart,
                "funnel": funnel,
                "held_units": data.held_units.get(cur, 0),
                "held_text": fmt.count("held_units", data.held_units.get(cur, 0)),
                "will_step_text": fmt.count("will_step", sum(will.values())),
                "recovery_note": recovery_note(data.first_action.get(cur)),
                "actions": actions,
                "late_charges_text": late_charges_text(data, fmt, cur),
                "recovery": recovery,
                "recovery_chart": recovery_chart,
                "age_chart": age_chart,
                "top": top,
                "top_title": fmt.count("top_debtors", len(top)) if top else L["top_debtors_none"],
                "will_step": [
                    {"stage": fmt.stage(k), "n": fmt.num(v)}
                    for k, v in sorted(will.items(), key=lambda kv: order.get(kv[0], 99))
                ],
                "will_step_total": sum(will.values()),
                "outcomes": outcome_tables(data, pol, fmt, cur),
                "profiles": profile_tables(data, fmt, cur),
                "forecast": forecast_table(data, fmt, cur),
            }
        )

    # deliveries of the day: channel × status
    statuses = sorted({r["status"] for r in data.deliveries_today})
    channels = sorted({r["channel"] for r in data.deliveries_today})
    grid = {(r["channel"], r["status"]): r["deliveries"] for r in data.deliveries_today}
    deliveries = {
        "statuses": [fmt.status(s) for s in statuses],
        "rows": [
            {
                "channel": fmt.channel(c),
                "cells": [fmt.num(grid.get((c, s), 0)) if grid.get((c, s)) else "" for s in statuses],
            }
            for c in channels
        ],
    }

    attention = []
    for kind, title in (
        ("pending_approval", L["pending_approvals"]),
        ("undeliverable", L["undeliverable"]),
        ("failed", L["failed"]),
        ("in_doubt", L["in_doubt"]),
        ("missing_reference_rate", L["missing_reference_rate"]),
    ):
        rows = [r for r in data.attention if r["kind"] == kind]
        attention.append(
            {
                "kind": kind,
                "title": title,
                "count": len(rows),
                "rows": [
                    {
                        "date": fmt.date(r["as_of"]),
                        "customer": r.get("name") or r["customer_id"],
                        "customer_id": r["customer_id"],
                        "stage": fmt.stage(r["stage"]),
                        "channel": fmt.channel(r["channel"]) if r["channel"] else "",
                        "amount": fmt.money(r["amount_due"], r["currency"]),
                        "detail": fmt.reason(r["status"], r.get("detail")),
                    }
                    for r in rows[:ATTENTION_ROWS]
                ],
                "more": fmt.count("more", len(rows) - ATTENTION_ROWS) if len(rows) > ATTENTION_ROWS else "",
            }
        )
    rejected = {
        "total": sum(r["rows"] for r in data.rejected),
        "rows": [
            {
                "entity": fmt.entity(r["entity"]),
                "action": r["action"],
                "reason": r["reason"],
                "rows": fmt.num(r["rows"]),
                "first_row": r["first_row"],
            }
            for r in data.rejected[:ATTENTION_ROWS]
        ],
    }
    css = (REPORT_TEMPLATES / "report.css").read_text(encoding="utf-8")
    return {
        "L": L,
        "lang": fmt.language,
        "as_of": as_of,
        "title": L["title"].format(date=fmt.date(as_of, "long")),
        "generated": L["generated"].format(
            when=format_datetime(datetime.now(UTC), "medium", locale=fmt.locale), db=Path(data.db).name or "—"
        ),
        "css": Markup(css),
        "sections": sections,
        "deliveries": deliveries,
        "attention": attention,
        "rejected": rejected,
        "has_metrics": data.has_metrics,
        "has_ladder": data.has_ladder,
        "planned": fmt.count("planned", data.planned) if data.planned else "",
        "no_data": not data.currencies,
        "freshness": data.freshness,
    }


def _watch_more(watch: list[dict], as_of: date, fmt: Fmt) -> str:
    """How many more units than the page lists, and where the whole list is: the workbook's sheet,
    or the CSV beside the report when the sheet holds only the first WORKBOOK_WATCHED."""
    if len(watch) <= WATCHED:
        return ""
    if len(watch) > WORKBOOK_WATCHED:
        return fmt.count("watch_more_csv", len(watch) - WATCHED, file=credit_watch_csv_name(as_of))
    return fmt.count("watch_more", len(watch) - WATCHED)


def render_html(data: ReportData, pol: Policy, fmt: Fmt) -> str:
    return _env().get_template("report.html.j2").render(**build_context(data, pol, fmt))
