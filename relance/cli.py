"""The `relance` command line. Each verb calls the same functions as the Prefect flows."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from relance.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="relance — accounts-receivable dunning on DuckDB and Prefect.",
    pretty_exceptions_enable=False,
)

PolicyOpt = typer.Option(None, "--policy", help="Policy YAML (default: the shipped policies/default.yaml).")
MetricsTargetOpt = typer.Option(
    None, "--metrics-target",
    help="postgresql:// URL: also upsert recovery_metrics and aged_balance into its schema `relance`.",
)
LanguageOpt = typer.Option("fr", "--language", help="Report language: fr or en.")
ReportDirOpt = typer.Option(None, "--report-dir", help="Folder for the report (default: <db folder>/reports).")


def _fail(message: str) -> None:
    typer.echo(f"relance: error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command("sample-data")
def sample_data(
    out: Path = typer.Option(..., "--out", help="Folder to write customers, invoices, payments, holds into."),
    customers: int = typer.Option(1000, "--customers", min=1, help="Number of customers."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Reference date (YYYY-MM-DD, default today)."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    policy: Optional[str] = PolicyOpt,
) -> None:
    """Write a realistic, deterministic synthetic source."""
    from relance.dates import parse_date, today
    from relance.sample_data import generate

    if fmt not in ("csv", "parquet"):
        _fail(f"--format {fmt!r}: expected csv or parquet")
    counts = generate(out, customers=customers, seed=seed, as_of=parse_date(as_of, "--as-of") or today(), fmt=fmt)
    typer.echo(f"sample data written to {out}: " + ", ".join(f"{n} {e}" for e, n in counts.items()))


@app.command("run")
def run(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Run date YYYY-MM-DD (default: today in Europe/Paris)."),
    source: str = typer.Option(..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."),
    db: Path = typer.Option(Path(".relance/relance.duckdb"), "--db", help="DuckDB file."),
    outbox: Optional[Path] = typer.Option(None, "--outbox", help="Folder for rendered messages (default: beside the db)."),
    send: bool = typer.Option(False, "--send", help="Send through the real providers (SendGrid, …)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve formal notices without review."),
    source_schema: str = typer.Option("public", "--source-schema", help="PostgreSQL schema of the source tables."),
    policy: Optional[str] = PolicyOpt,
    metrics_target: Optional[str] = MetricsTargetOpt,
    language: str = LanguageOpt,
    report_dir: Optional[Path] = ReportDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """The nightly job for one date."""
    from flows.nightly import nightly_run

    _check_language(language)
    summary = nightly_run(
        as_of=as_of, source=source, db=str(db), outbox=str(outbox) if outbox else None,
        send=send, auto_approve=auto_approve, policy=policy, source_schema=source_schema,
        metrics_target=metrics_target, language=language, report_dir=str(report_dir) if report_dir else None,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(format_summary(summary))


@app.command("backfill")
def backfill(
    start: str = typer.Option(..., "--start", help="First date to replay (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last date to replay (YYYY-MM-DD), inclusive."),
    source: str = typer.Option(..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."),
    db: Path = typer.Option(Path(".relance/relance.duckdb"), "--db", help="DuckDB file."),
    source_schema: str = typer.Option("public", "--source-schema", help="PostgreSQL schema of the source tables."),
    policy: Optional[str] = PolicyOpt,
    metrics_target: Optional[str] = MetricsTargetOpt,
    language: str = LanguageOpt,
    report_dir: Optional[Path] = ReportDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the backfill summary as JSON."),
) -> None:
    """Replay the ladder for each date from --start to --end (deliveries simulated, nothing sent)."""
    from flows.backfill import backfill_run

    _check_language(language)
    summary = backfill_run(
        start=start, end=end, source=source, db=str(db), policy=policy, source_schema=source_schema,
        metrics_target=metrics_target, language=language, report_dir=str(report_dir) if report_dir else None,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(format_backfill_summary(summary))


@app.command("report")
def report_cmd(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Report date YYYY-MM-DD (default: today in Europe/Paris)."),
    db: Path = typer.Option(Path(".relance/relance.duckdb"), "--db", help="DuckDB file."),
    out: Path = typer.Option(..., "--out", help="Folder for the HTML, PDF and Excel files."),
    language: str = LanguageOpt,
    policy: Optional[str] = PolicyOpt,
) -> None:
    """The finance report for one date: HTML (self-contained), PDF and Excel."""
    from relance.dates import parse_date, today
    from tasks.report import report

    _check_language(language)
    res = report(str(db), parse_date(as_of, "--as-of") or today(), str(out), language=language, policy=policy)
    typer.echo(f"relance report for {res['as_of']} in {res['seconds']} s:\n  {res['html']}\n  {res['pdf']}\n  {res['xlsx']}")


def _check_language(language: str) -> None:
    from tasks.report import LANGUAGES

    if language not in LANGUAGES:
        _fail(f"--language {language!r}: expected fr or en")


def format_backfill_summary(summary: dict) -> str:
    rep = summary["replay"]
    lines = [f"relance backfill {summary['start']} .. {summary['end']} — {rep['days']} days in {summary['seconds']} s"]
    lines.append(
        f"  ladder:   {rep['actions']} simulated actions"
        + (" (" + ", ".join(f"{n} {s}" for s, n in rep["actions_by_stage"].items()) + ")" if rep["actions"] else "")
        + f"; {rep['episodes_opened']} episodes opened, {rep['episodes_closed']} closed"
    )
    if rep["deliveries_by_status"]:
        lines.append("  deliveries: " + ", ".join(f"{n} {s}" for s, n in sorted(rep["deliveries_by_status"].items())))
    lines.append(f"  results:  {summary['db']} (tables unit_stage, dunning_actions, deliveries, dunning_episodes)")
    return "\n".join(lines)


def format_ladder(esc: dict) -> list[str]:
    """The ladder's lines of a run summary."""
    lines = [
        f"  ladder:   {esc['units']} units ({esc['held_units']} held), {esc['open_episodes']} open episodes "
        f"({esc['episodes_opened']} opened, {esc['episodes_closed']} closed today)"
    ]
    if esc["actions"]:
        lines.append(
            f"  actions:  {esc['actions']} new: " + ", ".join(f"{n} {s}" for s, n in esc["actions_by_stage"].items())
        )
        lines.append("  deliveries: " + ", ".join(f"{n} {s}" for s, n in esc["deliveries_by_status"].items()))
    else:
        lines.append("  actions:  none today")
    for cur, c in esc.get("charges", {}).items():
        lines.append(f"  charges:  {cur}: {c['actions']} actions, interest {c['interest']}, indemnity {c['indemnity']}")
    return lines


def format_summary(summary: dict) -> str:
    ing, aged = summary["ingest"], summary["age"]
    lines = [f"relance run for {summary['as_of']} — done in {summary['seconds']} s"]
    lines.append(
        "  ingest:   " + ", ".join(f"{n} {e}" for e, n in ing["rows_loaded"].items())
        + f" loaded; {ing['rows_rejected']} rows rejected"
        + (f", {ing['fields_dropped']} contact fields dropped" if ing["fields_dropped"] else "")
    )
    for cur, c in aged["by_currency"].items():
        lines.append(
            f"  aged:     {cur}: {c['open_invoices']} open invoices, open {c['open_amount']}, overdue {c['overdue']}"
        )
    if not aged["by_currency"]:
        lines.append("  aged:     no open invoices")
    if "escalate" in summary:
        lines.extend(format_ladder(summary["escalate"]))
    lines.append(f"  results:  {summary['db']} (tables invoice_snapshot, aged_balance, rejected_rows"
                 + (", unit_stage, dunning_actions, deliveries" if "escalate" in summary else "") + ")")
    lines.append(f"  outbox:   {summary['outbox']}")
    if summary.get("report"):
        lines.append(f"  report:   {summary['report']['html']} (also .pdf and .xlsx)")
    if summary.get("write_back"):
        lines.append(f"  metrics written back to {summary['write_back'].get('target', 'PostgreSQL')}")
    if ing["rows_rejected"]:
        lines.append(
            f"  see why rows were rejected: select * from rejected_rows where as_of = '{summary['as_of']}'"
        )
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        app(standalone_mode=True)
    except UserError as e:
        typer.echo(f"relance: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
