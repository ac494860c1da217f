"""report: the finance report of as_of — HTML (self-contained), PDF (WeasyPrint) and Excel (xlsxwriter).

What a finance person reads in two minutes: the headline figures and their trend over the last
90 run dates, the aged balance (stacked chart and table), the ladder as a funnel, today's actions,
the recovery after reminders, the largest overdue debtors with their next step, and what needs a
person. Everything is read from the DuckDB file (read-only); a table a later step fills (the ladder,
the metrics) may be empty or missing, and its section then says so.

Money stays `Decimal` from DuckDB to the page and the workbook: formatted with babel for the
reader, written to Excel as numbers (the double Excel stores) with a 2-decimal format. Charts are
inline SVG built here; the page has no script and loads nothing from the network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import xlsxwriter
import yaml
from babel.dates import format_date, format_datetime
from babel.numbers import format_compact_decimal, format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from relance import SQL_DIR, TEMPLATES_DIR
from relance.errors import UserError
from relance.policy import Policy, load_policy
from tasks import warehouse
from tasks.step import _in_flow_run, get_logger, step

REPORT_TEMPLATES = TEMPLATES_DIR / "report"
LANGUAGES = ("fr", "en")
TOP_DEBTORS = 20
TREND_METRICS = ("dso_90d", "cei_30d", "overdue_ar", "collected_30d")
ATTENTION_ROWS = 25  # rows listed per kind; the count says how many more
#: Bucket colours, from not yet due (green) to the oldest (dark red); unapplied credit is grey.
BUCKET_COLOURS = ["#4c9f70", "#c9d66b", "#f2c14e", "#f08a4b", "#d9534f", "#8e2a2a", "#5c1a1a", "#3d0f0f"]
CREDIT_COLOUR = "#9aa5b1"
ZERO = Decimal("0")


# ------------------------------------------------------------------------------------ formatting
@lru_cache(maxsize=None)
def labels(language: str) -> dict:
    if language not in LANGUAGES:
        raise UserError(f"report language {language!r}: expected one of {', '.join(LANGUAGES)}")
    data = yaml.safe_load((REPORT_TEMPLATES / "labels.yaml").read_text(encoding="utf-8"))
    return data[language]


def _half_up(value: Decimal | int | float, digits: int) -> Decimal:
    """Round for display the way finance does (half up; babel alone rounds half to even)."""
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


@lru_cache(maxsize=4096)
def _format_date(value: date, fmt: str, locale: str) -> str:
    return format_date(value, fmt, locale=locale)


#: The unit of each metric a reader sees (one place: the cards, the workbook's number formats).
MONEY_METRICS = ("open_ar", "overdue_ar", "current_ar", "unapplied_credit", "collected_30d")
DAYS_METRICS = ("dso_90d", "best_possible_dso_90d", "add_90d")
PCT_METRICS = ("cei_30d", "recovery_rate_30d", "overdue_held_share", "credit_settled_rate_30d")
COUNT_METRICS = ("recovery_actions_30d", "actions_of_day")

#: Codes a report shows only through labels.yaml; a code missing there is shown as is (and
#: logged), so that tests/test_report.py catches it rather than the report failing.
MISSING_LABELS: set[tuple[str, str]] = set()


def metric_unit(name: str) -> str:
    if name in MONEY_METRICS:
        return "money"
    if name in DAYS_METRICS:
        return "days"
    if name in PCT_METRICS or name.endswith(("_rate_30d", "_rate_90d", "_share")) or name.startswith("recovery_by_age"):
        return "pct"
    return "number"


class Fmt:
    """Numbers, money, percentages and dates for a reader of `language` (babel); every code a
    reader sees (stage, channel, status, bucket, metric …) goes through labels.yaml here."""

    def __init__(self, language: str, pol: Policy | None = None) -> None:
        self.language = language
        self.L = labels(language)
        self.locale = self.L["locale"]
        self.pol = pol

    def missing(self, group: str, code: Any) -> str:
        if (group, str(code)) not in MISSING_LABELS:
            MISSING_LABELS.add((group, str(code)))
            get_logger().warning("report: no %s label for %r in templates/report/labels.yaml", group, code)
        return self.L.get("missing_label", "{code}").format(code=code)

    def term(self, group: str, code: Any) -> str:
        """The label of `code` in the labels group `group` (stages, channels, statuses …)."""
        if code is None or code == "":
            return "—"
        value = (self.L.get(group) or {}).get(code)
        return value if isinstance(value, str) else self.missing(group, code)

    def metric_name(self, name: str) -> str:
        value = self.L.get(name)
        return value if isinstance(value, str) else self.missing("metric", name)

    def metric_value(self, name: str, value: Decimal | None, currency: str) -> str:
        unit = metric_unit(name)
        if unit == "money":
            return self.money(value, currency)
        if unit == "days":
            return self.days(value)
        if unit == "pct":
            return self.pct(value)
        return self.num(value, 0 if value is None or value == value.to_integral_value() else 2)

    def bucket(self, code: str) -> str:
        """A bucket's label: labels.yaml `buckets` if it names it, else from the policy's bounds."""
        if code == "unapplied_credit":
            return self.L["unapplied_credit"]
        named = (self.L.get("buckets") or {}).get(code)
        if isinstance(named, str):
            return named
        pol = self.pol or load_policy(None)
        for _, name, lo, hi in pol.bucket_rows():
            if name != code:
                continue
            if lo is None:
                return self.L["bucket_not_due"] if hi == 0 else self.L["bucket_upto"].format(max=hi)
            if hi is None:
                return self.L["bucket_over"].format(min=lo)
            return self.L["bucket_range"].format(min=lo + 1, max=hi)
        return self.missing("bucket", code)

    def reason(self, status: str | None, detail: str | None) -> str:
        """Why a delivery needs a person, in the reader's language: the ledger's last_error is
        English text for the operators; its kind is recognised and labelled, the raw text of
        a provider's answer is kept as the detail."""
        R = self.L["reasons"]
        text = (detail or "").strip()
        if not text:
            return self.status(status)
        if status in ("in_doubt", "sending", "unknown"):
            return R["in_doubt"]
        low = text.lower()
        parts = []
        if low.startswith("no email address") or low.startswith("no email"):
            parts.append(R["no_email"])
        elif low.startswith("email address") and "not valid" in low:
            parts.append(R["bad_email"])
        elif low.startswith("no phone number"):
            parts.append(R["no_phone"])
        elif low.startswith("phone") and "e.164" in low:
            parts.append(R["bad_phone"])
        if "no postal address" in low:
            parts.append(R["no_address"])
        if parts:
            return ", ".join(dict.fromkeys(parts))
        for marker, key in (("rendering failed", "rendering"), ("not rendered", "rendering"), ("not prepared", "rendering"),
                            ("too long", "too_long"), ("not written over", "file_taken")):
            if marker in low:
                return R["detail"].format(reason=R[key], detail=text[:160])
        return R["detail"].format(reason=R["provider"], detail=text[:160])

    def money(self, value: Decimal | None, currency: str) -> str:
        if value is None:
            return "—"
        return format_currency(Decimal(value), currency, locale=self.locale)

    def compact(self, value: Decimal | float, currency: str | None = None) -> str:
        if currency:
            from babel.numbers import format_compact_currency

            return format_compact_currency(value, currency, locale=self.locale, fraction_digits=1)
        return format_compact_decimal(value, locale=self.locale, fraction_digits=1)

    def pct(self, value: Decimal | None) -> str:
        if value is None:
            return "—"
        text = format_decimal(_half_up(value, 1), format="#,##0.0", locale=self.locale)
        return text + ("\u00a0%" if self.language == "fr" else "%")

    def num(self, value: Decimal | int | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(_half_up(value, digits), format=pattern, locale=self.locale)

    def days(self, value: Decimal | None) -> str:
        if value is None:
            return "—"
        return self.L["days"].format(value=self.num(value, 1))

    def date(self, value: date | None, fmt: str = "medium") -> str:
        if value is None:
            return "—"
        return _format_date(value, fmt, self.locale)

    def stage(self, code: str | None) -> str:
        if not code:
            return self.L["none"]
        return self.term("stages", code)

    def channel(self, code: str | None) -> str:
        return self.term("channels", code)

    def status(self, code: str | None) -> str:
        return self.term("statuses", code)

    def hold(self, code: str | None) -> str:
        if not code:
            return "—"
        return ", ".join(self.term("holds", c.strip()) for c in code.split(","))

    def segment(self, code: str | None) -> str:
        if not code:
            return "—"
        value = self.L.get(f"segment_{code}")
        return value if isinstance(value, str) else self.missing("segment", code)

    def count(self, key: str, n: int) -> str:
        """labels[key] (a plural sentence with {n}), or labels[key_one] for one (fr: 0 or 1)."""
        one = n < 2 if self.language == "fr" else n == 1
        text = self.L.get(f"{key}_one") if one else None
        return (text or self.L[key]).format(n=self.num(n))

    def entity(self, code: str | None) -> str:
        return self.term("entities", code)

    def dimension(self, code: str | None) -> str:
        return self.term("dimensions", code)


# ------------------------------------------------------------------------------------ inline SVG
def _e(text: Any) -> str:
    return str(escape(str(text)))


def svg_sparkline(points: list[tuple[date, Decimal]], width: int = 220, height: int = 44,
                  colour: str = "#2b6cb0") -> Markup:
    """A line of the metric over the run dates (x spaced by date), its last point marked."""
    if not points:
        return Markup("")
    xs = [p[0].toordinal() for p in points]
    ys = [float(p[1]) for p in points]  # geometry only: the figures shown come from the Decimals
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    pad = 4
    def sx(x: int) -> float:
        return pad + (x - x0) / ((x1 - x0) or 1) * (width - 2 * pad)
    def sy(y: float) -> float:
        return height - pad - (y - y0) / ((y1 - y0) or 1) * (height - 2 * pad)
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
    lx, ly = sx(xs[-1]), sy(ys[-1])
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{coords}"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="3" fill="{colour}"/></svg>'
    )


def svg_stacked_columns(columns: list[tuple[str, list[Decimal]]], series: list[tuple[str, str]],
                        fmt: Fmt, width: int = 720, height: int = 260, currency: str | None = None) -> Markup:
    """Stacked columns (one per date), one segment per bucket; series = [(label, colour)]."""
    if not columns:
        return Markup("")
    left, right, top, bottom = 64, 12, 10, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum((v for v in vals if v > 0), ZERO) for _, vals in columns]
    peak = float(max(totals) or 1)
    slot = plot_w / len(columns)
    bar_w = max(4.0, min(48.0, slot * 0.7))
    parts = [
        f'<svg class="chart" width="{width}" height="{height + 22}" viewBox="0 0 {width} {height + 22}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="10">'
    ]
    for i in range(5):
        v = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end" fill="#4a5568">{_e(fmt.compact(v, currency))}</text>')
    label_every = max(1, len(columns) // 12)
    for i, (label, vals) in enumerate(columns):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for (name, colour), v in zip(series, vals):
            if v <= 0:
                continue
            h = float(v) / peak * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f'<title>{_e(label)} — {_e(name)} — {_e(fmt.money(v, currency) if currency else fmt.num(v, 2))}</title></rect>'
            )
        if i % label_every == 0 or i == len(columns) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#4a5568">{_e(label)}</text>'
            )
    parts += _svg_legend(series, left, height + 6)
    parts.append("</svg>")
    return Markup("".join(parts))


def _svg_legend(items, x: float, y: float) -> list[str]:
    """A chart legend: a coloured square and its name for each (name, colour), left to right."""
    parts = []
    for name, colour in items:
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y + 9}" fill="#1a202c">{_e(name)}</text>')
        x += 14 + 7 * len(name) + 18
    return parts


def svg_funnel(rows: list[tuple[str, int, str]], width: int = 720, row_h: int = 26) -> Markup:
    """The ladder as a funnel: one centred bar per stage, its width the number of debtors there."""
    if not rows:
        return Markup("")
    peak = max(n for _, n, _ in rows) or 1
    label_w, text_w = 150, 170
    bar_room = width - label_w - text_w
    height = row_h * len(rows) + 4
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    ]
    for i, (label, n, text) in enumerate(rows):
        y = 2 + i * row_h
        w = max(2.0, bar_room * n / peak) if n else 0
        x = label_w + (bar_room - w) / 2
        shade = 0.35 + 0.65 * i / max(1, len(rows) - 1)
        colour = f"rgb({int(43 + 170 * shade)},{int(108 - 60 * shade)},{int(176 - 120 * shade)})"
        parts.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" fill="#1a202c">{_e(label)}</text>')
        if w:
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" rx="3" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + bar_room + 8}" y="{y + row_h / 2 + 4:.1f}" fill="#1a202c">{_e(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_hbars(rows: list[tuple[str, list[tuple[Decimal | None, str]]]], legend: list[tuple[str, str]],
              fmt: Fmt, width: int = 720, row_h: int = 22, reference: list[tuple[str, float]] | None = None) -> Markup:
    """Horizontal bars of percentages (0–100): per row, one bar per series [(value, colour)]."""
    if not rows:
        return Markup("")
    label_w, value_w = 150, 70
    room = width - label_w - value_w
    n_series = max(len(vals) for _, vals in rows)
    group_h = row_h * n_series + 8
    height = group_h * len(rows) + 30
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    ]
    for pct in (0, 25, 50, 75, 100):
        x = label_w + room * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 26}" stroke="#e2e8f0"/>')
        tick = f"{pct}\u00a0%" if fmt.language == "fr" else f"{pct}%"
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" fill="#4a5568">{tick}</text>')
    for i, (label, vals) in enumerate(rows):
        y = 4 + i * group_h
        parts.append(f'<text x="{label_w - 8}" y="{y + group_h / 2:.1f}" text-anchor="end" fill="#1a202c">{_e(label)}</text>')
        for j, (value, colour) in enumerate(vals):
            by = y + j * row_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{by + row_h - 8}" fill="#718096">—</text>')
                continue
            w = room * min(max(float(value), 0.0), 100.0) / 100
            parts.append(f'<rect x="{label_w}" y="{by + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{by + row_h - 8}" fill="#1a202c">{_e(fmt.pct(value))}</text>')
    for label, pct in reference or []:
        x = label_w + room * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 26}" stroke="#1a202c" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="10" fill="#1a202c">{_e(label)}</text>')
    parts += _svg_legend(legend, label_w, height - 10)
    parts.append("</svg>")
    return Markup("".join(parts))


# ------------------------------------------------------------------------------------ reading the warehouse
def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _report_sql(name: str) -> str:
    return (SQL_DIR / "reports" / f"{name}.sql").read_text(encoding="utf-8")


def _query(con, name: str, params: dict) -> list[dict]:
    sql = _report_sql(name)
    cur = con.execute(sql, warehouse._bind(sql, params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


@dataclass
class ReportData:
    as_of: date
    db: str
    language: str
    buckets: list[str]
    currencies: list[str] = field(default_factory=list)
    has_metrics: bool = False
    has_ladder: bool = False
    metrics: dict = field(default_factory=dict)    # (currency, metric, dimension, value) -> Decimal
    history: dict = field(default_factory=dict)    # (currency, metric, dimension, value) -> [(date, Decimal)]
    aged: list[dict] = field(default_factory=list)  # aged_balance rows of as_of, by customer
    debtors: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)  # units per stage
    held_units: dict = field(default_factory=dict)    # currency -> count
    will_step: dict = field(default_factory=dict)     # currency -> {stage: n}
    planned: int = 0
    actions_today: list[dict] = field(default_factory=list)
    deliveries_today: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    first_action: dict = field(default_factory=dict)  # currency -> its first action dated in (D-120, D-30]
    freshness: dict | None = None  # the freshness guard's last verdict for as_of (tasks/freshness.py)


def gather(con, as_of: date, pol: Policy, db: str = "", language: str = "fr") -> ReportData:
    """Everything the report shows, as plain values (Decimal money, dates)."""
    tables = _tables(con)
    data = ReportData(as_of=as_of, db=db, language=language, buckets=[b.name for b in pol.aging_buckets])
    params = {"as_of": as_of}
    from tasks.freshness import latest_verdict

    data.freshness = latest_verdict(con, as_of)
    if "recovery_metrics" in tables:
        for cur, metric, dim, val, value in con.execute(
            "select currency, metric, dimension, dimension_value, value from recovery_metrics where as_of = $as_of",
            params,
        ).fetchall():
            data.metrics[(cur, metric, dim, val)] = value
        data.has_metrics = bool(data.metrics)
        for row in _query(con, "metrics_history", params):
            key = (row["currency"], row["metric"], row["dimension"], row["dimension_value"])
            data.history.setdefault(key, []).append((row["as_of"], row["value"]))
    if "aged_balance" in tables and "stg_customers" in tables:
        data.aged = _query(con, "aged_balance_by_customer", params)
    if {"invoice_snapshot", "stg_customers", "unit_stage", "dunning_actions"} <= tables:
        data.debtors = _query(con, "debtors", params)
    if "unit_stage" in tables:
        data.stages = [
            dict(zip(("currency", "stage", "units", "dunnable"), r))
            for r in con.execute(
                """
                select currency, current_stage, count(*), sum(dunnable_amount)
                from unit_stage where as_of = $as_of and current_stage is not null
                group by currency, current_stage
                """,
                params,
            ).fetchall()
        ]
        data.held_units = dict(con.execute(
            "select currency, count(*) from unit_stage where as_of = $as_of and held group by currency", params
        ).fetchall())
        ranks = {s.code: i for i, s in enumerate(pol.stages, start=1)}
        for cur, current, target, held in con.execute(
            "select currency, current_stage, target_stage, held from unit_stage where as_of = $as_of and target_stage is not null",
            params,
        ).fetchall():
            if held or ranks.get(target, 0) <= ranks.get(current, 0):
                continue
            nxt = _next_stage(pol, current, overdue=True)
            if nxt is not None:
                data.will_step.setdefault(cur, {}).setdefault(nxt.code, 0)
                data.will_step[cur][nxt.code] += 1
        data.has_ladder = warehouse.scalar(
            con, "select count(*) from unit_stage where as_of = $as_of", params
        ) > 0
    if {"dunning_actions", "deliveries"} <= tables:
        data.actions_today = [
            dict(zip(("currency", "stage", "stage_rank", "actions", "amount"), r))
            for r in con.execute(
                """
                select currency, stage, min(stage_rank), count(*), sum(amount_due) from dunning_actions
                where as_of = $as_of group by currency, stage order by currency, min(stage_rank)
                """,
                params,
            ).fetchall()
        ]
        data.deliveries_today = [
            dict(zip(("channel", "status", "deliveries"), r))
            for r in con.execute(
                """
                select deliveries.channel, deliveries.status, count(*)
                from deliveries join dunning_actions using (action_id)
                where dunning_actions.as_of = $as_of
                group by deliveries.channel, deliveries.status order by deliveries.channel, deliveries.status
                """,
                params,
            ).fetchall()
        ]
        data.first_action = dict(con.execute(
            """select currency, min(as_of) from dunning_actions
               where as_of > cast($as_of as date) - 120 and as_of <= cast($as_of as date) - 30 group by currency""",
            params,
        ).fetchall())
        data.planned = warehouse.scalar(
            con,
            """select count(*) from deliveries join dunning_actions using (action_id)
               where deliveries.status = 'planned' and dunning_actions.as_of <= $as_of""",
            params,
        )
        if "stg_customers" in tables:
            data.attention = _query(con, "attention", params)
    if "rejected_rows" in tables:
        data.rejected = _query(con, "rejected_rows", params)
    currencies = {k[0] for k in data.metrics} | {r["currency"] for r in data.aged} | {r["currency"] for r in data.debtors}
    open_by_cur = {c: data.metrics.get((c, "open_ar", "all", "all"), ZERO) for c in currencies}
    data.currencies = sorted(currencies, key=lambda c: (-open_by_cur[c], c))
    return data


# ------------------------------------------------------------------------------------ next step
def _next_stage(pol: Policy, current: str | None, overdue: bool):
    codes = [s.code for s in pol.stages]
    start = codes.index(current) + 1 if current in codes else 0
    for stage in pol.stages[start:]:
        if overdue and stage.offset_days < 0 and current is None:
            continue  # preventive is passed over when the driving invoice is already overdue
        return stage
    return None


def _notice_offset(pol: Policy) -> int:
    """The formal notice's offset (the stages above it wait for its deadline); none: no stage waits."""
    return next((s.offset_days for s in pol.stages if s.code == "formal_notice"), 10**6)


def next_step(row: dict, pol: Policy, as_of: date, fmt: Fmt) -> str:
    """What relance will do next for a debtor, in words (from unit_stage and its last action)."""
    L = fmt.L
    if row.get("episode_id") is None and row.get("current_stage") is None and row.get("unit_held") is None:
        return L["next_none"]
    if row.get("unit_held"):
        return L["next_held"].format(reason=fmt.hold(row.get("hold_reason") or "other"))
    if row.get("last_action_status") == "pending_approval":
        return L["next_pending"].format(stage=fmt.stage(row.get("last_stage")))
    overdue = (row.get("driving_days_past_due") or 0) > 0
    nxt = _next_stage(pol, row.get("current_stage"), overdue)
    if nxt is None:
        return L["next_end"]
    dunnable = row.get("dunnable_amount") or ZERO
    if dunnable < nxt.min_amount:
        return L["next_min_amount"].format(stage=fmt.stage(nxt.code), amount=fmt.money(nxt.min_amount, row["currency"]))
    earliest = as_of + timedelta(days=1)
    if row.get("driving_due_date"):
        earliest = max(earliest, row["driving_due_date"] + timedelta(days=nxt.offset_days))
    if row.get("last_action_date"):
        earliest = max(earliest, row["last_action_date"] + timedelta(days=pol.min_gap_days))
    if row.get("notice_deadline") and nxt.offset_days > _notice_offset(pol):  # after the formal notice's deadline
        earliest = max(earliest, row["notice_deadline"] + timedelta(days=1))
    elif row.get("notice_sent_on") and nxt.offset_days > _notice_offset(pol):  # no receipt known yet
        earliest = max(earliest, row["notice_sent_on"] + timedelta(days=pol.receipt_wait_days))
    return L["next_stage"].format(stage=fmt.stage(nxt.code), date=fmt.date(earliest))


# ------------------------------------------------------------------------------------ the page
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


def build_context(data: ReportData, pol: Policy, fmt: Fmt) -> dict:
    L, as_of = fmt.L, data.as_of
    m = data.metrics
    bucket_series = [(fmt.bucket(b), BUCKET_COLOURS[min(i, len(BUCKET_COLOURS) - 1)]) for i, b in enumerate(data.buckets)]
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
            return m.get((cur, name, dim, val))

        # headline and trends
        cards = []
        for name in ("open_ar", "overdue_ar", "collected_30d", "dso_90d", "cei_30d", "recovery_rate_30d",
                     "overdue_held_share", "unapplied_credit"):
            value = metric(name)
            series = _series(data, cur, name)
            shown = fmt.metric_value(name, value, cur)
            detail = ""
            if name == "overdue_ar" and value is not None and metric("open_ar"):
                share = (value * 100 / metric("open_ar")).quantize(Decimal("0.1"))
                detail = L["overdue_share"].format(pct=fmt.pct(share))
            if name == "dso_90d" and value is not None:
                detail = L["dso_detail"].format(best=fmt.days(metric("best_possible_dso_90d")), add=fmt.days(metric("add_90d")))
            trend = ""
            if name in TREND_METRICS and len(series) > 1:
                first, last = series[0], series[-1]
                trend = L["trend_from"].format(first=fmt.date(first[0], "d MMM"), last=fmt.date(last[0], "d MMM"))
            cards.append({
                "label": fmt.metric_name(name), "value": shown, "detail": detail,
                "spark": svg_sparkline(series) if name in TREND_METRICS and len(series) > 1 else Markup(""),
                "trend": trend,
            })
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
            aged_table.append({
                "bucket": fmt.bucket(b),
                "amount": fmt.money(amount, cur),
                "share": fmt.pct(amount * 100 / positive_total) if positive_total else "",
                "invoices": fmt.num(count),
                "debtors": fmt.num(len(debtors)),
            })
        aged_total = fmt.money(positive_total, cur)
        # the unapplied credit is not netted (contract §5): shown after the total, said to be outside it
        credit, _, credit_debtors = by_bucket.get("unapplied_credit", [ZERO, 0, set()])
        aged_credit = {"bucket": L["unapplied_not_in_total"], "amount": fmt.money(credit, cur),
                       "debtors": fmt.num(len(credit_debtors))} if credit else None
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
            (fmt.stage(s.code), st[s.code]["units"] if s.code in st else 0,
             f'{fmt.num(st[s.code]["units"]) if s.code in st else 0} · {fmt.money(st[s.code]["dunnable"] if s.code in st else ZERO, cur)}')
            for s in pol.stages
        ]
        extra = [r for code, r in st.items() if code not in order]
        funnel_rows += [(fmt.stage(r["stage"]), r["units"], fmt.num(r["units"])) for r in extra]
        funnel = svg_funnel(funnel_rows) if st else Markup("")

        # today's actions
        actions = [
            {"stage": fmt.stage(r["stage"]), "actions": fmt.num(r["actions"]), "amount": fmt.money(r["amount"], cur)}
            for r in data.actions_today if r["currency"] == cur
        ]

        # recovery after reminders
        def rates(dimension: str, values: Iterable[str], label) -> list[dict]:
            out = []
            for v in values:
                rate = metric("recovery_rate_30d", dimension, v)
                if rate is None:
                    continue
                n = metric("recovery_actions_30d", dimension, v)
                out.append({"label": label(v), "rate": fmt.pct(rate), "value": rate,
                            "actions": fmt.num(n) if n is not None else ""})
            return out

        stage_codes = [s.code for s in pol.stages] + sorted(
            {k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "stage"} - {s.code for s in pol.stages}
        )
        recovery = {
            "stage": rates("stage", stage_codes, fmt.stage),
            "channel": rates("channel", sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "channel"}), fmt.channel),
            "segment": rates("segment", sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "segment"}), fmt.segment),
            # real actions apart from replayed ones (a backfill's simulated steps), when measured so
            "mode": rates("mode", sorted({k[3] for k in m if k[0] == cur and k[1] == "recovery_rate_30d" and k[2] == "mode"}), fmt.dimension),
            "all": fmt.pct(metric("recovery_rate_30d")),
        }
        recovery_chart = svg_hbars(
            [(r["label"], [(r["value"], "#2b6cb0")]) for r in recovery["stage"]], [], fmt
        ) if recovery["stage"] else Markup("")
        age_rows = []
        for b in data.buckets:
            r30, r90 = metric("recovery_by_age_30d", "age_bucket", b), metric("recovery_by_age_90d", "age_bucket", b)
            if r30 is None and r90 is None:
                continue
            age_rows.append((fmt.bucket(b), [(r30, "#90cdf4"), (r90, "#2b6cb0")]))
        age_chart = svg_hbars(
            age_rows, [(L["window_30"], "#90cdf4"), (L["window_90"], "#2b6cb0")], fmt,
            reference=[("90 %", 90.0), ("10 %", 10.0)],
        ) if age_rows else Markup("")

        # the largest overdue debtors
        top = []
        for r in [d for d in data.debtors if d["currency"] == cur and d["overdue_amount"] > 0][:TOP_DEBTORS]:
            top.append({
                "customer_id": r["customer_id"], "name": r.get("name") or r["customer_id"],
                "overdue": fmt.money(r["overdue_amount"], cur), "open": fmt.money(r["open_amount"], cur),
                "oldest": fmt.num(r["oldest_days_past_due"]), "hold": fmt.hold(r.get("hold_kinds")),
                "stage": fmt.stage(r.get("current_stage")) if r.get("current_stage") else "—",
                "next": next_step(r, pol, as_of, fmt), "collector": r.get("collector") or "",
            })
        will = data.will_step.get(cur, {})
        sections.append({
            "currency": cur, "cards": cards, "run_dates": len(run_dates),
            "trend_title": L["trend"].format(n=len(run_dates)) if len(run_dates) > 1 else "",
            "aged_table": aged_table, "aged_total": aged_total, "aged_credit": aged_credit, "aged_chart": aged_chart,
            "funnel": funnel, "held_units": data.held_units.get(cur, 0),
            "held_text": fmt.count("held_units", data.held_units.get(cur, 0)),
            "will_step_text": fmt.count("will_step", sum(will.values())),
            "recovery_note": recovery_note(data.first_action.get(cur)),
            "actions": actions, "recovery": recovery, "recovery_chart": recovery_chart, "age_chart": age_chart,
            "top": top, "top_title": fmt.count("top_debtors", len(top)) if top else L["top_debtors_none"],
            "will_step": [{"stage": fmt.stage(k), "n": fmt.num(v)} for k, v in sorted(will.items(), key=lambda kv: order.get(kv[0], 99))],
            "will_step_total": sum(will.values()),
        })

    # deliveries of the day: channel × status
    statuses = sorted({r["status"] for r in data.deliveries_today})
    channels = sorted({r["channel"] for r in data.deliveries_today})
    grid = {(r["channel"], r["status"]): r["deliveries"] for r in data.deliveries_today}
    deliveries = {
        "statuses": [fmt.status(s) for s in statuses],
        "rows": [{"channel": fmt.channel(c), "cells": [fmt.num(grid.get((c, s), 0)) if grid.get((c, s)) else "" for s in statuses]}
                 for c in channels],
    }

    attention = []
    for kind, title in (("pending_approval", L["pending_approvals"]), ("undeliverable", L["undeliverable"]),
                        ("failed", L["failed"]), ("in_doubt", L["in_doubt"]),
                        ("missing_reference_rate", L["missing_reference_rate"])):
        rows = [r for r in data.attention if r["kind"] == kind]
        attention.append({
            "kind": kind, "title": title, "count": len(rows),
            "rows": [{
                "date": fmt.date(r["as_of"]), "customer": r.get("name") or r["customer_id"], "customer_id": r["customer_id"],
                "stage": fmt.stage(r["stage"]), "channel": fmt.channel(r["channel"]) if r["channel"] else "",
                "amount": fmt.money(r["amount_due"], r["currency"]), "detail": fmt.reason(r["status"], r.get("detail")),
            } for r in rows[:ATTENTION_ROWS]],
            "more": fmt.count("more", len(rows) - ATTENTION_ROWS) if len(rows) > ATTENTION_ROWS else "",
        })
    rejected = {
        "total": sum(r["rows"] for r in data.rejected),
        "rows": [{"entity": fmt.entity(r["entity"]), "action": r["action"], "reason": r["reason"], "rows": fmt.num(r["rows"]),
                  "first_row": r["first_row"]} for r in data.rejected[:ATTENTION_ROWS]],
    }
    css = (REPORT_TEMPLATES / "report.css").read_text(encoding="utf-8")
    return {
        "L": L, "lang": fmt.language, "as_of": as_of,
        "title": L["title"].format(date=fmt.date(as_of, "long")),
        "generated": L["generated"].format(
            when=format_datetime(datetime.now(timezone.utc), "medium", locale=fmt.locale), db=Path(data.db).name or "—"
        ),
        "css": Markup(css),
        "sections": sections, "deliveries": deliveries, "attention": attention, "rejected": rejected,
        "has_metrics": data.has_metrics, "has_ladder": data.has_ladder,
        "planned": fmt.count("planned", data.planned) if data.planned else "",
        "no_data": not data.currencies,
        "freshness": data.freshness,
    }


def render_html(data: ReportData, pol: Policy, fmt: Fmt) -> str:
    return _env().get_template("report.html.j2").render(**build_context(data, pol, fmt))


# ------------------------------------------------------------------------------------ the workbook
MONEY_FORMAT, INT_FORMAT, RATIO_FORMAT = "#,##0.00", "#,##0", "0.00"
_CENT = Decimal("0.01")
_WORKBOOK_OPTIONS = {
    # a row goes to the sheet's file once the next one starts: at 1M invoices no memory on top of
    # the data (220 MB more without) and ~12% faster
    "constant_memory": True,
    # every text cell is written with write_string; these keep write() too from ever turning text
    # into a formula, a link or a number
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
    "nan_inf_to_errors": True,  # a NaN or infinite float becomes an error cell rather than a failure
}
_HEADER = {"bold": True, "bg_color": "#DDE6F0", "pattern": 1, "valign": "top", "text_wrap": True}


class _Sheet:
    """One worksheet of the workbook: a bold header on a blue fill, column widths, the header row
    frozen, an auto-filter, and a number format per column; rows are appended in order (the
    workbook is in constant_memory mode: a row is written out once the next one starts).

    Values are written by type: strings stay text (write_string: never formulas, links or numbers,
    whatever they start with); Decimals are numbers (money quantized to the cent first), shown with
    the column's format; bool is a boolean; int and float are numbers; None and "" leave the cell
    empty (in a bold row it keeps the bold format); anything else is written as its text."""

    def __init__(self, book, formats: dict, title: str, columns: list[tuple[str, int, str | None]]) -> None:
        def style(num_format: str | None, bold: bool):
            key = (num_format, bold)
            if key not in formats:
                props = ({"num_format": num_format} if num_format else {}) | ({"bold": True} if bold else {})
                formats[key] = book.add_format(props) if props else None
            return formats[key]

        if "header" not in formats:
            formats["header"] = book.add_format(_HEADER)
        self.style = style
        self.ws = ws = book.add_worksheet(title[:31])
        self.money = [nf == MONEY_FORMAT for _, _, nf in columns]
        self.plain = [style(nf, False) for _, _, nf in columns]
        self.bold = [style(nf, True) for _, _, nf in columns]
        self.row = 0
        for col, (name, width, _) in enumerate(columns):
            # `width` is the file's column width (in Calibri 11 digits of 7 pixels), as openpyxl writes
            # it; set_column() would add Excel's 5-pixel padding on top, the pixel width does not
            ws.set_column_pixels(col, col, width * 7)
            ws.write_string(0, col, name, formats["header"])
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, 0, len(columns) - 1)

    def append(self, values: list, bold: bool = False, num_formats: dict[int, str] | None = None) -> None:
        """num_formats: {column: number format} for this row only (a summary's value column holds
        money, days and percentages, each with its own unit)."""
        self.row += 1
        r, ws = self.row, self.ws
        styles = self.bold if bold else self.plain
        if num_formats:
            styles = list(styles)
            for col, nf in num_formats.items():
                styles[col] = self.style(nf, bold)
        for col, (value, money, style) in enumerate(zip(values, self.money, styles)):
            kind = value.__class__
            if kind is str:
                if value:
                    ws.write_string(r, col, value, style)
                elif bold:
                    ws.write_blank(r, col, None, style)
            elif kind is Decimal:
                # Excel stores a double: the decimal's value to 15 significant digits
                ws.write_number(r, col, float(value.quantize(_CENT) if money else value), style)
            elif value is None:
                if bold:
                    ws.write_blank(r, col, None, style)
            elif kind is bool:
                ws.write_boolean(r, col, value, style)
            elif kind is int or kind is float:
                ws.write_number(r, col, value, style)
            else:
                ws.write_string(r, col, str(value), style)


def write_workbook(path: Path, data: ReportData, pol: Policy, fmt: Fmt) -> Path:
    """Excel (xlsxwriter): a summary, the aged balance by customer (a column per bucket) and the
    debtor list. Money cells are numbers with a 2-decimal number format. Written to a .tmp file,
    then moved over `path`."""
    L = fmt.L
    tmp = path.with_suffix(".xlsx.tmp")
    book = xlsxwriter.Workbook(str(tmp), _WORKBOOK_OPTIONS)
    book.set_properties({"author": "relance"})
    formats: dict = {}
    try:
        _fill_workbook(book, formats, data, pol, fmt, L)
    except BaseException:
        book.close()  # the constant_memory mode's temporary row files go away with it
        tmp.unlink(missing_ok=True)
        raise
    book.close()
    tmp.replace(path)
    return path


def _excel_text(text: str) -> str:
    """Literal text inside an Excel number format."""
    return '"' + text.replace('"', "") + '"' if text else ""


def metric_cell(name: str, value: Decimal, currency: str, fmt: Fmt) -> tuple[Decimal, str]:
    """A metric as the workbook writes it: (the number, its Excel number format with the unit).
    Money: 2 decimals and the currency's symbol; days: 1 decimal and "j"/"d"; percentages: the
    fraction (42.5887 % → 0.425887) with Excel's % format, shown 42.6 %."""
    from babel.numbers import get_currency_symbol

    unit = metric_unit(name)
    if unit == "money":
        symbol = get_currency_symbol(currency, locale=fmt.locale)
        pattern = f"#,##0.00 {_excel_text(symbol)}" if fmt.language == "fr" else f"{_excel_text(symbol)}#,##0.00"
        return Decimal(value).quantize(_CENT), pattern
    if unit == "days":
        before, _, after = fmt.L["days"].partition("{value}")
        return Decimal(value), f"{_excel_text(before)}#,##0.0{_excel_text(after)}"
    if unit == "pct":
        return Decimal(value) / 100, "0.0 %" if fmt.language == "fr" else "0.0%"
    return Decimal(value), "General"


SUMMARY_METRICS = ("open_ar", "overdue_ar", "current_ar", "unapplied_credit", "collected_30d", "dso_90d",
                   "best_possible_dso_90d", "add_90d", "cei_30d", "recovery_rate_30d", "credit_settled_rate_30d",
                   "overdue_held_share")


def _fill_workbook(book, formats: dict, data: ReportData, pol: Policy, fmt: Fmt, L: dict) -> None:
    # summary: each value in its unit (the number format of its row)
    ws = _Sheet(book, formats, L["sheet_summary"], [(L["col_currency"], 10, None), (L["col_metric"], 52, None),
                                                    (L["col_value"], 18, None)])
    for cur in data.currencies:
        for name in SUMMARY_METRICS:
            value = data.metrics.get((cur, name, "all", "all"))
            if value is not None:
                number, pattern = metric_cell(name, value, cur, fmt)
                ws.append([cur, fmt.metric_name(name), number], num_formats={2: pattern})

    # aged balance by customer, a column per bucket
    buckets = data.buckets
    ws = _Sheet(book, formats, L["sheet_aged"],
                [(L["col_customer_id"], 14, None), (L["col_name"], 36, None), (L["col_currency"], 8, None)]
                + [(fmt.bucket(b), 13, MONEY_FORMAT) for b in buckets]
                + [(L["col_unapplied"], 13, MONEY_FORMAT), (L["col_open"], 15, MONEY_FORMAT), (L["col_overdue"], 15, MONEY_FORMAT)])
    # overdue = the buckets holding only overdue days (the first bucket holds the days not yet due)
    overdue_buckets = [b.name for b in pol.aging_buckets[1:]]
    pivot: dict[tuple[str, str], dict] = {}
    for r in data.aged:
        row = pivot.setdefault((r["currency"], r["customer_id"]), {"name": r.get("name") or "", "amounts": {}})
        row["amounts"][r["bucket"]] = row["amounts"].get(r["bucket"], ZERO) + r["amount"]
    keys = buckets + ["unapplied", "open", "overdue"]
    totals: dict[str, list[Decimal]] = {}
    for (cur, cust), row in sorted(pivot.items()):
        a = row["amounts"]
        values = [a.get(b, ZERO) for b in buckets] + [
            -a.get("unapplied_credit", ZERO),
            sum((a.get(b, ZERO) for b in buckets), ZERO),
            sum((a.get(b, ZERO) for b in overdue_buckets), ZERO),
        ]
        t = totals.setdefault(cur, [ZERO] * len(keys))
        totals[cur] = [x + y for x, y in zip(t, values)]
        ws.append([cust, row["name"], cur] + values)
    for cur, t in sorted(totals.items()):
        ws.append([L["total"], "", cur] + t, bold=True)

    # debtors
    ws = _Sheet(book, formats, L["sheet_debtors"], [
        (L["col_customer_id"], 14, None), (L["col_name"], 36, None), (L["col_segment"], 10, None),
        (L["col_currency"], 8, None), (L["col_open"], 15, MONEY_FORMAT), (L["col_overdue"], 15, MONEY_FORMAT),
        (L["col_oldest"], 10, INT_FORMAT), (L["col_held"], 8, None), (L["col_hold"], 18, None),
        (L["col_stage"], 18, None), (L["col_next"], 40, None), (L["col_collector"], 18, None),
        (L["col_email"], 28, None), (L["col_phone"], 16, None), (L["col_city"], 18, None),
    ])
    for r in data.debtors:
        held = bool(r.get("unit_held")) or bool(r.get("overdue_held"))
        ws.append([
            r["customer_id"], r.get("name") or "", fmt.segment(r.get("segment")) if r.get("segment") else "", r["currency"], r["open_amount"],
            r["overdue_amount"], r["oldest_days_past_due"], L["word_yes"] if held else L["word_no"],
            fmt.hold(r.get("hold_reason") if r.get("unit_held") else r.get("hold_kinds")) if held else "",
            fmt.stage(r["current_stage"]) if r.get("current_stage") else "",
            next_step(r, pol, data.as_of, fmt), r.get("collector") or "", r.get("email") or "",
            r.get("phone") or "", r.get("city") or "",
        ])


# ------------------------------------------------------------------------------------ the step
def _open_read_only(db: str):
    if not Path(db).exists():
        raise UserError(f"database {db} does not exist; run `relance run --db {db}` first")
    return warehouse.open_db(db, read_only=True)


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
    t = time.perf_counter()
    from weasyprint import HTML

    HTML(string=page, base_url=str(Path(out).resolve())).write_pdf(paths["pdf"])
    timings["pdf"] = time.perf_counter() - t
    t = time.perf_counter()
    write_workbook(Path(paths["xlsx"]), data, pol, fmt)
    timings["xlsx"] = time.perf_counter() - t
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


# ------------------------------------------------------------------------------------ Prefect artifacts
def artifact_content(db: str, as_of: date, report_paths: dict, language: str = "en",
                     policy: str | None = None) -> dict:
    """The markdown summary and the top-debtor table of as_of, as plain strings (no Decimal, no date)."""
    pol = load_policy(policy)
    fmt = Fmt(language, pol)
    with _open_read_only(db) as con:
        data = gather(con, as_of, pol, db=db, language=language)
    lines = [f"# relance — {as_of.isoformat()}", ""]
    if data.freshness and data.freshness["stale"]:
        lines += ["**STALE SOURCE: " + ("planned and sent anyway (--allow-stale)" if data.freshness["allow_stale"]
                                        else "no contact planned, nothing sent") + "** — "
                  + "; ".join(data.freshness["reasons"]), ""]
    if not data.currencies:
        lines.append("No data for this date.")
    for cur in data.currencies:
        def v(metric: str, dim: str = "all", val: str = "all"):
            return data.metrics.get((cur, metric, dim, val))

        def money(x):
            return f"{x:.2f} {cur}" if x is not None else "—"

        def pct(x):
            return f"{x:.1f} %" if x is not None else "—"

        def days(x):
            return f"{x:.1f} d" if x is not None else "—"

        lines += [
            f"## {cur}", "",
            "| metric | value |", "|---|---:|",
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
        "## Needs a person", "",
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
            table.append({
                "customer_id": str(r["customer_id"]),
                "name": str(r.get("name") or ""),
                "currency": cur,
                "overdue": f"{r['overdue_amount']:.2f}",
                "open": f"{r['open_amount']:.2f}",
                "oldest_days_past_due": str(r["oldest_days_past_due"]),
                "stage": fmt.stage(r["current_stage"]) if r.get("current_stage") else "",
                "next_step": next_step(r, pol, as_of, fmt),
            })
    return {"markdown": "\n".join(lines), "table": table}


def publish_artifacts(db: str, as_of: date, report_paths: dict, policy: str | None = None) -> dict:
    """Inside a Prefect flow run: a markdown summary (`relance-summary`), a table of the top
    overdue debtors (`relance-top-debtors`) and a link to the HTML report (`relance-report`).
    The keys are stable, so the Artifacts page shows their history run after run. Outside a flow
    run it does nothing and returns {}."""
    if not _in_flow_run():
        return {}
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    content = artifact_content(db, as_of, report_paths, policy=policy)
    ids = {
        "relance-summary": create_markdown_artifact(
            markdown=content["markdown"], key="relance-summary", description=f"relance summary for {as_of.isoformat()}"
        ),
        "relance-top-debtors": create_table_artifact(
            table=content["table"], key="relance-top-debtors",
            description=f"the largest overdue debtors on {as_of.isoformat()}, per currency",
        ),
    }
    if report_paths.get("html"):
        ids["relance-report"] = create_link_artifact(
            link=Path(report_paths["html"]).resolve().as_uri(), link_text=f"relance report {as_of.isoformat()}",
            key="relance-report", description=f"the finance report for {as_of.isoformat()} (HTML)",
        )
    return {k: str(v) for k, v in ids.items()}
