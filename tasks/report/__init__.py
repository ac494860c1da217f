"""report: the finance report of as_of — HTML (self-contained), PDF (WeasyPrint) and Excel (xlsxwriter).

What a finance person reads in two minutes: the headline figures and their trend over the last
90 run dates, the aged balance (stacked chart and table), the ladder as a funnel, today's actions,
the recovery after reminders, the largest overdue debtors with their next step, and what needs a
person. Everything is read from the DuckDB file (read-only); a table a later step fills (the ladder,
the metrics) may be empty or missing, and its section then says so.

Money stays `Decimal` from DuckDB to the page and the workbook: formatted for the reader by
relance.core.money (babel, half-up rounding), written to Excel as numbers (the double Excel stores)
with a 2-decimal format. Charts are inline SVG built here; the page has no script and loads
nothing from the network.

    data.py      the figures: ReportData, gather() (sql/reports/*.sql), next_step()
    format.py    labels (templates/report/labels.yaml), metric units, Fmt
    charts.py    the inline SVG charts
    page.py      the page's context, render_html() (its PDF: relance/core/pdf.py)
    workbook.py  write_workbook()
    main.py      the step report(), report_paths(), the Prefect artifacts
"""

from relance.core.pdf import write_pdf
from tasks.report.charts import BUCKET_COLOURS, svg_funnel, svg_hbars, svg_sparkline, svg_stacked_columns
from tasks.report.data import ReportData, gather, next_step
from tasks.report.format import (
    LANGUAGES,
    MISSING_LABELS,
    REPORT_TEMPLATES,
    Fmt,
    labels,
    metric_unit,
)
from tasks.report.main import artifact_content, publish_artifacts, report, report_paths
from tasks.report.page import (
    ATTENTION_ROWS,
    TOP_DEBTORS,
    TREND_METRICS,
    WATCHED,
    build_context,
    render_html,
)
from tasks.report.workbook import SUMMARY_METRICS, metric_cell, write_workbook

__all__ = [
    "ATTENTION_ROWS",
    "BUCKET_COLOURS",
    "LANGUAGES",
    "MISSING_LABELS",
    "REPORT_TEMPLATES",
    "SUMMARY_METRICS",
    "TOP_DEBTORS",
    "TREND_METRICS",
    "WATCHED",
    "Fmt",
    "ReportData",
    "artifact_content",
    "build_context",
    "gather",
    "labels",
    "metric_cell",
    "metric_unit",
    "next_step",
    "publish_artifacts",
    "render_html",
    "report",
    "report_paths",
    "svg_funnel",
    "svg_hbars",
    "svg_sparkline",
    "svg_stacked_columns",
    "write_pdf",
    "write_workbook",
]
