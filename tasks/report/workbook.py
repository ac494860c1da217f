"""The report's workbook (xlsxwriter): a summary, the aged balance by customer (a column per bucket)
and the debtor list. Money cells are numbers — the double Excel stores, from the Decimal rounded
half up to the cent — shown with a 2-decimal number format; a metric's unit is in its number format."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import xlsxwriter

from relance.core import money
from relance.core.policy import Policy
from tasks.report.data import (
    RISK_CLASSES,
    WORKBOOK_WATCHED,
    ReportData,
    accuracy_row,
    credit_watch_csv_name,
    next_step,
    outcome_metrics,
    watch_by_currency,
)
from tasks.report.format import Fmt, metric_unit

ZERO = Decimal("0")


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
        for col, (value, is_money, style) in enumerate(zip(values, self.money, styles)):
            kind = value.__class__
            if kind is str:
                if value:
                    ws.write_string(r, col, value, style)
                elif bold:
                    ws.write_blank(r, col, None, style)
            elif kind is Decimal:
                # Excel stores a double: the decimal's value to 15 significant digits
                ws.write_number(r, col, float(value.quantize(_CENT, ROUND_HALF_UP) if is_money else value), style)
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
    """Excel (xlsxwriter): a summary, the aged balance by customer (a column per bucket), the
    debtor list (with each unit's class, score, broken promises and disputes), what debtors said,
    the profiles per class, the class changes, the credit watch and the forecast. Money cells are numbers with a 2-decimal number format. Written to a .tmp file,
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
    unit = metric_unit(name)
    if unit == "money":
        symbol = money.currency_symbol(currency, fmt.locale)
        pattern = f"#,##0.00 {_excel_text(symbol)}" if fmt.language == "fr" else f"{_excel_text(symbol)}#,##0.00"
        return money.half_up(value, 2), pattern
    if unit == "days":
        before, _, after = fmt.L["days"].partition("{value}")
        return Decimal(value), f"{_excel_text(before)}#,##0.0{_excel_text(after)}"
    if unit == "pct":
        return Decimal(value) / 100, "0.0 %" if fmt.language == "fr" else "0.0%"
    return Decimal(value), "General"


SUMMARY_METRICS = (
    "open_ar",
    "overdue_ar",
    "current_ar",
    "unapplied_credit",
    "collected_30d",
    "dso_90d",
    "best_possible_dso_90d",
    "add_90d",
    "cei_30d",
    "recovery_rate_30d",
    "credit_settled_rate_30d",
    "overdue_held_share",
)


def _fill_workbook(book, formats: dict, data: ReportData, pol: Policy, fmt: Fmt, L: dict) -> None:
    # summary: each value in its unit (the number format of its row)
    ws = _Sheet(
        book,
        formats,
        L["sheet_summary"],
        [(L["col_currency"], 10, None), (L["col_metric"], 52, None), (L["col_value"], 18, None)],
    )
    for cur in data.currencies:
        for name in SUMMARY_METRICS:
            value = data.metrics.get((cur, name, "all", "all"))
            if value is not None:
                number, pattern = metric_cell(name, value, cur, fmt)
                ws.append([cur, fmt.metric_name(name), number], num_formats={2: pattern})
        statements = data.late_charges.get(cur)
        if statements:  # the month's statements of late-payment charges (tasks/late_charges.py)
            ws.append([cur, L["late_charges_total"], statements["total"]], num_formats={2: MONEY_FORMAT})
            # where they are: sent, partly sent, not delivered (tasks/late_charges.py refresh_statuses)
            for key in ("sent", "partly_sent", "failed"):
                if statements.get(key):
                    ws.append([cur, L[f"late_charges_count_{key}"], statements[key]])

    # aged balance by customer, a column per bucket
    buckets = data.buckets
    ws = _Sheet(
        book,
        formats,
        L["sheet_aged"],
        [(L["col_customer_id"], 14, None), (L["col_name"], 36, None), (L["col_currency"], 8, None)]
        + [(fmt.bucket(b), 13, MONEY_FORMAT) for b in buckets]
        + [
            (L["col_unapplied"], 13, MONEY_FORMAT),
            (L["col_open"], 15, MONEY_FORMAT),
            (L["col_overdue"], 15, MONEY_FORMAT),
        ],
    )
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
    ws = _Sheet(
        book,
        formats,
        L["sheet_debtors"],
        [
            (L["col_customer_id"], 14, None),
            (L["col_name"], 36, None),
            (L["col_segment"], 10, None),
            (L["col_currency"], 8, None),
            (L["col_open"], 15, MONEY_FORMAT),
            (L["col_overdue"], 15, MONEY_FORMAT),
            (L["col_oldest"], 10, INT_FORMAT),
            (L["col_held"], 8, None),
            (L["col_hold"], 18, None),
            (L["col_stage"], 18, None),
            (L["col_next"], 40, None),
            (L["col_risk_class"], 16, None),
            (L["col_score"], 8, INT_FORMAT),
            (L["col_broken_promises"], 12, INT_FORMAT),
            (L["col_disputes"], 12, INT_FORMAT),
            (L["col_collector"], 18, None),
            (L["col_email"], 28, None),
            (L["col_phone"], 16, None),
            (L["col_city"], 18, None),
            (L["col_ladder"], 16, None),
        ],
    )
    # the unit's profile of as_of (docs/metrics.md "Debtor profile"); empty before measure ran
    no_profile = {"risk_class": None, "score": None, "broken_promises": None, "disputes": None}
    for r in data.debtors:
        held = bool(r.get("unit_held")) or bool(r.get("overdue_held"))
        profile = data.unit_profiles.get((r["customer_id"], r["currency"]), no_profile)
        ws.append(
            [
                r["customer_id"],
                r.get("name") or "",
                fmt.segment(r.get("segment")) if r.get("segment") else "",
                r["currency"],
                r["open_amount"],
                r["overdue_amount"],
                r["oldest_days_past_due"],
                L["word_yes"] if held else L["word_no"],
                fmt.hold(r.get("hold_reason") if r.get("unit_held") else r.get("hold_kinds")) if held else "",
                fmt.stage(r["current_stage"]) if r.get("current_stage") else "",
                next_step(r, pol, data.as_of, fmt),
                fmt.term("risk_classes", profile["risk_class"]) if profile["risk_class"] else "",
                profile["score"],
                profile["broken_promises"],
                profile["disputes"],
                r.get("collector") or "",
                r.get("email") or "",
                r.get("phone") or "",
                r.get("city") or "",
                r.get("ladder") or "",  # the ladder the unit climbs (policy `ladders:`), as unit_stage has it
            ]
        )

    # what debtors said: promises, disputes, plans, outcomes and the cash by last step (one row per
    # figure; its value in its unit, as in the summary)
    ws = _Sheet(
        book,
        formats,
        L["sheet_outcomes"],
        [
            (L["col_currency"], 10, None),
            (L["col_metric"], 52, None),
            (L["col_section"], 26, None),
            (L["col_dimension"], 30, None),
            (L["col_value"], 18, None),
        ],
    )
    for cur in data.currencies:
        for metric, dimension, code, value in outcome_metrics(data, cur):
            detail, item = fmt.outcome_row(dimension, code)
            number, pattern = metric_cell(metric, value, cur, fmt)
            ws.append([cur, fmt.metric_name(metric), detail, item, number], num_formats={4: pattern})

    _fill_profiles(book, formats, data, fmt, L)


def _fill_profiles(book, formats: dict, data: ReportData, fmt: Fmt, L: dict) -> None:
    """The sheets of issue 16: the units and amounts per risk class (with the credit watch count),
    the units whose class changed since the previous measured date (worst first), the credit watch
    (every unit, the reasons in words) and the collections forecast of as_of beside the earlier
    forecasts whose window has passed. Each unit's class, score, broken promises and disputes are
    columns of the sheet "Debtors"."""
    ws = _Sheet(
        book,
        formats,
        L["sheet_profiles"],
        [
            (L["col_currency"], 10, None),
            (L["col_risk_class"], 30, None),
            (L["col_units"], 12, INT_FORMAT),
            (L["col_open"], 15, MONEY_FORMAT),
            (L["col_overdue"], 15, MONEY_FORMAT),
            (L["col_watched"], 14, INT_FORMAT),
        ],
    )
    order = {c: i for i, c in enumerate(RISK_CLASSES)}
    for r in sorted(data.risk_classes, key=lambda r: (r["currency"], order.get(r["risk_class"], 99), r["risk_class"])):
        ws.append(
            [
                r["currency"],
                fmt.term("risk_classes", r["risk_class"]),
                r["units"],
                r["open_amount"],
                r["overdue_amount"],
                r["watched_units"],
            ]
        )
    ws = _Sheet(
        book,
        formats,
        L["sheet_movers"],
        [
            (L["col_customer_id"], 14, None),
            (L["col_name"], 36, None),
            (L["col_currency"], 8, None),
            (L["col_previous_date"], 12, None),
            (L["col_previous_class"], 16, None),
            (L["col_risk_class"], 16, None),
            (L["col_previous_score"], 10, INT_FORMAT),
            (L["col_score"], 10, INT_FORMAT),
            (L["col_open"], 15, MONEY_FORMAT),
            (L["col_overdue"], 15, MONEY_FORMAT),
        ],
    )
    for r in data.movers:
        ws.append(
            [
                r["customer_id"],
                r.get("name") or "",
                r["currency"],
                r["previous_as_of"],
                fmt.term("risk_classes", r["previous_class"]),
                fmt.term("risk_classes", r["risk_class"]),
                r["previous_score"],
                r["score"],
                r["open_amount"],
                r["overdue_amount"],
            ]
        )
    # the credit watch, largest overdue first: the first WORKBOOK_WATCHED per currency (the page lists
    # the first WATCHED), then a line naming the CSV that holds them all
    ws = _Sheet(
        book,
        formats,
        L["sheet_watch"],
        [
            (L["col_customer_id"], 14, None),
            (L["col_name"], 36, None),
            (L["col_currency"], 8, None),
            (L["col_risk_class"], 16, None),
            (L["col_score"], 8, INT_FORMAT),
            (L["col_reasons"], 44, None),
            (L["col_overdue"], 15, MONEY_FORMAT),
            (L["col_oldest"], 10, INT_FORMAT),
            (L["col_broken_promises"], 12, INT_FORMAT),
            (L["col_disputes"], 12, INT_FORMAT),
        ],
    )
    for currency, rows in watch_by_currency(data.watched).items():
        for r in rows[:WORKBOOK_WATCHED]:
            ws.append(
                [
                    r["customer_id"],
                    r.get("name") or "",
                    r["currency"],
                    fmt.term("risk_classes", r["risk_class"]),
                    r["score"],
                    fmt.watch_reasons(r["reasons"], r["risk_class"]),
                    r["overdue_amount"],
                    r["max_days_past_due"],
                    r.get("broken_promises"),
                    r.get("disputes"),
                ]
            )
        if len(rows) > WORKBOOK_WATCHED:
            more = len(rows) - WORKBOOK_WATCHED
            ws.append(["", fmt.count("watch_more_csv", more, file=credit_watch_csv_name(data.as_of)), currency])
    ws = _Sheet(
        book,
        formats,
        L["sheet_forecast"],
        [
            (L["col_currency"], 10, None),
            (L["col_kind"], 18, None),
            (L["col_forecast_date"], 14, None),
            (L["col_horizon"], 10, INT_FORMAT),
            (L["col_expected"], 15, MONEY_FORMAT),
            (L["col_invoices"], 10, INT_FORMAT),
            (L["col_collected"], 15, MONEY_FORMAT),
            (L["col_difference"], 15, MONEY_FORMAT),
            (L["col_ratio"], 12, "0.00 %" if fmt.language == "fr" else "0.00%"),
        ],
    )
    for r in data.forecast:
        ws.append(
            [
                r["currency"],
                L["forecast_kind_now"],
                data.as_of,
                r["horizon_days"],
                r["expected_amount"],
                r["invoice_count"],
                None,
                None,
                None,
            ]
        )
    for r in map(accuracy_row, data.accuracy):
        ws.append(
            [
                r["currency"],
                L["forecast_kind_past"],
                r["forecast_date"],
                r["horizon_days"],
                r["expected_amount"],
                None,
                r["collected_amount"],
                r["difference"],
                r["ratio"] / 100 if r["ratio"] is not None else None,
            ]
        )
