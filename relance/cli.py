"""The `relance` command line. Each verb calls the same functions as the Prefect flows."""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from pathlib import Path

import typer

from relance.core.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="relance — accounts-receivable dunning on DuckDB and Prefect.",
    pretty_exceptions_enable=False,
)

PolicyOpt = typer.Option(None, "--policy", help="Policy YAML (default: the shipped policies/default.yaml).")
MetricsTargetOpt = typer.Option(
    None,
    "--metrics-target",
    help="postgresql:// URL: also upsert recovery_metrics and aged_balance into its schema `relance`.",
)
LanguageOpt = typer.Option("fr", "--language", help="Report language: fr or en.")
DbOpt = typer.Option(None, "--db", help="DuckDB file (default: .relance/relance.duckdb, under RELANCE_HOME if set).")
ReportDirOpt = typer.Option(None, "--report-dir", help="Folder for the report (default: <db folder>/reports).")
SourceSchemaOpt = typer.Option(
    None,
    "--source-schema",
    show_default=False,
    help="PostgreSQL schema of the source tables (default: RELANCE_SOURCE_SCHEMA, else public).",
)


FleetRootOpt = typer.Option(
    None, "--fleet-root", help="Run as a shard of the fleet at this folder: export the marts there (relance fleet)."
)
ShardOpt = typer.Option(None, "--shard", min=0, help="With --fleet-root: this run's shard number.")


def _fail(message: str) -> None:
    typer.echo(f"relance: error: {message}", err=True)
    raise typer.Exit(code=2)


def _check_outbox(outbox: Path, option: str = "--outbox") -> None:
    """The outbox must be a folder relance can write into — checked before anything is written."""
    if outbox.exists() and not outbox.is_dir():
        _fail(f"{option} {outbox} is a file, not a folder: give a folder (it is created if missing)")
    try:
        outbox.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"{option} {outbox}: the folder cannot be created ({e.strerror or e})")
    probe = outbox / f".relance-write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        _fail(f"{option} {outbox}: the folder is not writable ({e.strerror or e})")


#: The --db of the command being run, named by an error DuckDB raises in the middle of a step.
_DB: dict[str, Path] = {}


def _check_metrics_target(target: str | None) -> None:
    if target:
        from tasks.writeback import check_target

        check_target(target)


def _db_path(db: Path | None) -> Path:
    """--db, else the one default of relance.core.settings (<RELANCE_HOME>/relance.duckdb, .relance/relance.duckdb)."""
    from relance.core.settings import get_settings

    return db if db is not None else get_settings().default_db


def _check_db_path(db: Path | None) -> Path:
    db = _db_path(db)
    _DB["db"] = db
    if db.is_dir():
        _fail(f"--db {db} is a folder: give the DuckDB file's path (e.g. {db / 'relance.duckdb'})")
    existing = next((p for p in db.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        _fail(f"database {db}: cannot create its folder {db.parent} ({existing} is a file)")
    return db


@app.command("sample-data")
def sample_data(
    out: Path = typer.Option(..., "--out", help="Folder to write customers, invoices, payments, holds into."),
    customers: int = typer.Option(1000, "--customers", min=1, help="Number of customers."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    as_of: str | None = typer.Option(None, "--as-of", help="Reference date (YYYY-MM-DD, default today)."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    policy: str | None = PolicyOpt,
) -> None:
    """Write a realistic, deterministic synthetic source."""
    from relance.core.dates import parse_date, today
    from relance.sample_data import generate

    if fmt not in ("csv", "parquet"):
        _fail(f"--format {fmt!r}: expected csv or parquet")
    counts = generate(out, customers=customers, seed=seed, as_of=parse_date(as_of, "--as-of") or today(), fmt=fmt)
    typer.echo(f"sample data written to {out}: " + ", ".join(f"{n} {e}" for e, n in counts.items()))


@app.command("run")
def run(
    as_of: str | None = typer.Option(None, "--as-of", help="Run date YYYY-MM-DD (default: today in Europe/Paris)."),
    source: str = typer.Option(
        ..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."
    ),
    db: Path | None = DbOpt,
    outbox: Path | None = typer.Option(None, "--outbox", help="Folder for rendered messages (default: beside the db)."),
    send: bool = typer.Option(False, "--send", help="Send through the real providers (SendGrid, …)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve formal notices without review."),
    source_schema: str | None = SourceSchemaOpt,
    policy: str | None = PolicyOpt,
    metrics_target: str | None = MetricsTargetOpt,
    language: str = LanguageOpt,
    report_dir: Path | None = ReportDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    allow_stale: bool = typer.Option(
        False, "--allow-stale", help="Plan and send even though the source looks stale (this run only; audited)."
    ),
    fleet_root: Path | None = FleetRootOpt,
    shard: int | None = ShardOpt,
) -> None:
    """The nightly job for one date."""
    from flows.nightly import nightly_run
    from relance.core.dates import parse_date

    _check_language(language)
    day = parse_date(as_of, "--as-of")
    db = _check_db_path(db)
    _check_outbox(outbox or db.parent / "outbox")
    _check_metrics_target(metrics_target)
    summary = nightly_run(
        as_of=day,
        source=source,
        db=str(db),
        outbox=str(outbox) if outbox else None,
        send=send,
        auto_approve=auto_approve,
        policy=policy,
        source_schema=source_schema,
        metrics_target=metrics_target,
        language=language,
        report_dir=str(report_dir) if report_dir else None,
        allow_stale=allow_stale,
        fleet_root=str(fleet_root) if fleet_root else None,
        shard=shard,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(format_summary(summary))


@app.command("dispatch")
def dispatch_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Run date YYYY-MM-DD (default: today in Europe/Paris)."),
    db: Path | None = DbOpt,
    outbox: Path | None = typer.Option(None, "--outbox", help="Folder for rendered messages (default: beside the db)."),
    send: bool = typer.Option(False, "--send", help="Send through the real providers (SendGrid, the SMS gateway)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve formal notices without review."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Deliveries per batch (one Prefect task each)."),
    policy: str | None = PolicyOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Send what is planned (and approved) without re-running the night: e.g. a 09:00 run for the SMS deferred by quiet hours."""
    from relance.core.dates import parse_date, today
    from tasks.audit import audited
    from tasks.dispatch import dispatch

    day = parse_date(as_of, "--as-of") or today()
    db = _check_db_path(db)
    _check_outbox(outbox or db.parent / "outbox")
    if not db.exists():
        _fail(f"{db} does not exist: run the nightly job (relance run) first")
    with audited(db, "dispatch", day, policy=policy) as run:  # the run's row in `runs`
        summary = run.step(
            "dispatch",
            dispatch(
                str(db),
                day,
                str(outbox or db.parent / "outbox"),
                send=send,
                policy=policy,
                batch_size=batch_size,
                auto_approve=auto_approve,
            ),
        )
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else "\n".join(format_dispatch(summary)))


@app.command("approve")
def approve_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Actions dated up to this day (default: today)."),
    db: Path | None = DbOpt,
    approve_all: bool = typer.Option(False, "--all", help="Approve every action waiting for approval."),
    action: list[str] = typer.Option([], "--action", help="Approve this action (repeatable)."),
    reject: list[str] = typer.Option([], "--reject", help="Reject this action (repeatable; needs --reason)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (required to reject)."),
    by: str | None = typer.Option(None, "--by", help="Who decides (default: the login name)."),
) -> None:
    """Approve or reject the formal notices waiting for approval; the next run sends the approved ones."""
    import getpass

    from relance.core.dates import parse_date, today
    from tasks.dispatch import approve

    db = _check_db_path(db)
    res = approve(
        str(db),
        parse_date(as_of, "--as-of") or today(),
        approve_all=approve_all,
        action_ids=action,
        reject_ids=reject,
        by=by or getpass.getuser(),
        reason=reason,
    )
    typer.echo(
        f"approved {len(res['approved'])} action(s) ({res['deliveries_planned']} deliveries planned), "
        f"rejected {len(res['rejected'])} ({res['deliveries_skipped']} deliveries skipped); "
        f"{len(res['still_pending'])} still waiting"
    )
    for action_id in res["still_pending"]:
        typer.echo(f"  waiting: {action_id}")


@app.command("drafts")
def drafts_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Actions dated up to this day (default: today)."),
    db: Path | None = DbOpt,
    outbox: Path | None = typer.Option(None, "--outbox", help="Outbox folder (default: beside the db)."),
    policy: str | None = PolicyOpt,
) -> None:
    """Render the letters waiting for approval as drafts (marked "not sent"), to read before approving."""
    from relance.core.dates import parse_date, today
    from tasks.dispatch.drafts import render_drafts

    day = parse_date(as_of, "--as-of") or today()
    db = _check_db_path(db)
    _check_outbox(outbox or db.parent / "outbox")
    written = render_drafts(str(db), day, str(outbox or db.parent / "outbox"), policy=policy)
    typer.echo(f"{len(written)} draft(s) of letters waiting for approval" + (":" if written else ""))
    for d in written:
        typer.echo(f"  {d['action_id']}  {d['channel']}  {d['path']}")


@app.command("resolve")
def resolve_cmd(
    db: Path | None = DbOpt,
    delivery: list[str] = typer.Option(..., "--delivery", help="A delivery in doubt (repeatable)."),
    sent: bool | None = typer.Option(None, "--sent/--not-sent", help="Did the provider accept it?"),
    message_id: str | None = typer.Option(None, "--message-id", help="The provider's message id, if found."),
    by: str | None = typer.Option(None, "--by", help="Who decides (default: the login name)."),
    reason: str | None = typer.Option(None, "--reason", help="How it was checked."),
) -> None:
    """Settle deliveries left in doubt by a stopped run: --sent (found at the provider) or --not-sent (the next run sends it)."""
    import getpass

    from tasks.dispatch import resolve

    if sent is None:
        _fail("say --sent or --not-sent")
    db = _check_db_path(db)
    res = resolve(
        str(db), delivery, sent=sent, by=by or getpass.getuser(), reason=reason, provider_message_id=message_id
    )
    typer.echo(f"{len(res['resolved'])} deliveries now {res['status']}")


@app.command("preview")
def preview_cmd(
    stage: str = typer.Option(..., "--stage", help="Stage code, e.g. reminder_2."),
    channel: str = typer.Option(
        ..., "--channel", help="email, sms, letter, registered_letter, phone, visit or handoff."
    ),
    language: str = typer.Option("fr", "--language", help="fr or en."),
    fmt: str | None = typer.Option(None, "--format", help="email only: html (default), text or eml."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (needed for PDF letters)."),
    policy: str | None = PolicyOpt,
    ladder: str | None = typer.Option(
        None, "--ladder", help="The stage as this ladder of the policy has it (e.g. b2c), default standard."
    ),
) -> None:
    """Render one message with sample values, to check a wording change."""
    from relance.preview import preview

    result = preview(stage, channel, language, fmt=fmt, policy=policy, ladder=ladder)
    if out:
        out.write_bytes(result if isinstance(result, bytes) else result.encode("utf-8"))
        typer.echo(f"written to {out}")
    elif isinstance(result, bytes) and result.startswith(b"%PDF"):
        _fail("a letter is a PDF: give --out FILE.pdf")
    else:
        typer.echo(result.decode("utf-8") if isinstance(result, bytes) else result)


events_app = typer.Typer(
    no_args_is_help=True, help="Provider events (SendGrid Event Webhook, SMS status callbacks) into the ledger."
)
app.add_typer(events_app, name="events")
JournalOpt = typer.Option(
    None, "--journal", help="Journal folder (default: RELANCE_EVENTS_JOURNAL, else .relance/events)."
)


@events_app.command("serve")
def events_serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (keep loopback behind a reverse proxy)."
    ),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="Port to listen on."),
    journal: Path | None = JournalOpt,
) -> None:
    """Receive SendGrid's Event Webhook (POST /sendgrid/events) and SMS status callbacks (POST /sms/status)."""
    from tasks.events import SENDGRID_PATH, SMS_PATH, make_server, receiver_config

    cfg = receiver_config(journal)
    try:
        server = make_server(host, port, cfg)
    except OSError as e:
        _fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
    h, p = server.server_address[:2]
    typer.echo(
        f"relance events: listening on http://{h}:{p} ({SENDGRID_PATH}"
        + (f", {SMS_PATH}" if cfg.sms_token else "")
        + f"), journal {cfg.journal.folder}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@events_app.command("apply")
def events_apply(
    db: Path | None = DbOpt,
    journal: Path | None = JournalOpt,
) -> None:
    """Load the receiver's journal into the ledger (the nightly run also does it first)."""
    from tasks.events import apply_journal

    db = _db_path(db)
    typer.echo(format_events(apply_journal(str(db), journal)))


@events_app.command("import")
def events_import(
    file: Path = typer.Argument(..., help="A JSON array of SendGrid events."),
    db: Path | None = DbOpt,
) -> None:
    """Load a saved JSON array of SendGrid events into the ledger, as the journal would."""
    from tasks.events import import_file

    db = _db_path(db)
    typer.echo(format_events(import_file(str(db), file)))


def format_events(r: dict) -> str:
    return (
        f"events: {r['events']} read, {r['inserted']} new in delivery_events, {r['unmatched_total']} unmatched "
        f"(table unmatched_events); {r['states_changed']} delivery states changed, "
        f"{r['contacts_flagged']} email addresses flagged, {r['letters_planned']} letters planned for bounced emails"
    )


post_app = typer.Typer(no_args_is_help=True, help="Registered letters: the postal tracking export.")
app.add_typer(post_app, name="post")


@post_app.command("import")
def post_import(
    file: Path = typer.Argument(
        ...,
        help="Tracking CSV: reference (delivery id, or print batch reference with a sequence column), "
        'tracking_number, deposit_date, receipt_date or "returned", return_reason, presentation_date.',
    ),
    db: Path | None = DbOpt,
    policy: str | None = PolicyOpt,
    outbox: Path | None = typer.Option(
        None, "--outbox", help="Where the print manifests are, for batch references (default: beside the db)."
    ),
) -> None:
    """Record deposits, receipts and returns of letters; a formal notice's deadline runs from its receipt."""
    from tasks.events import import_tracking

    db = _db_path(db)
    r = import_tracking(str(db), file, policy=policy, outbox=str(outbox) if outbox else None)
    typer.echo(
        f"post: {r['rows']} rows read, {r['loaded']} letters recorded in postal_tracking"
        + (
            f"; {len(r['unknown'])} references are no letter of the ledger: " + ", ".join(r["unknown"][:5])
            if r["unknown"]
            else ""
        )
    )


def format_dispatch(d: dict) -> list[str]:
    """The dispatch lines of a run summary."""
    lines = [
        f"  dispatch: {d['mode']}, "
        + (", ".join(f"{n} {s}" for s, n in sorted(d["totals"].items())) or "nothing to send")
    ]
    for channel, counts in d["by_channel"].items():
        lines.append(f"    {channel:<18} " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if d["pending_approval"]:
        lines.append(
            f"  waiting for approval: {d['pending_approval']} deliveries — read them: relance drafts --db … "
            f"--as-of {d['as_of']}; decide: relance approve --db … --as-of {d['as_of']} --all"
        )
    if d["in_doubt"]["count"]:
        lines.append(
            f"  IN DOUBT: {d['in_doubt']['count']} deliveries (never re-sent automatically): "
            + ", ".join(d["in_doubt"]["ids"][:5])
            + (" …" if d["in_doubt"]["count"] > 5 else "")
            + " — check the provider, then relance resolve --delivery ID --sent|--not-sent"
        )
    for channel, p in d["print"].items():
        lines.append(
            f"  print:    {channel}: {p['letters']} letters, {p['pages']} pages → {p['print_batch']} (manifest {p['manifest']})"
        )
    for e in d["errors"]:
        lines.append(f"  error:    {e}")
    lines.append(f"  outbox:   {d['outbox']}")
    return lines


@app.command("backfill")
def backfill(
    start: str = typer.Option(..., "--start", help="First date to replay (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last date to replay (YYYY-MM-DD), inclusive."),
    source: str = typer.Option(
        ..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."
    ),
    db: Path | None = DbOpt,
    source_schema: str | None = SourceSchemaOpt,
    policy: str | None = PolicyOpt,
    metrics_target: str | None = MetricsTargetOpt,
    language: str = LanguageOpt,
    report_dir: Path | None = ReportDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the backfill summary as JSON."),
    fleet_root: Path | None = FleetRootOpt,
    shard: int | None = ShardOpt,
) -> None:
    """Replay the ladder for each date from --start to --end (deliveries simulated, nothing sent)."""
    from flows.backfill import backfill_run
    from relance.core.dates import parse_date

    _check_language(language)
    db = _check_db_path(db)
    _check_metrics_target(metrics_target)
    summary = backfill_run(
        start=parse_date(start, "--start"),
        end=parse_date(end, "--end"),
        source=source,
        db=str(db),
        policy=policy,
        source_schema=source_schema,
        metrics_target=metrics_target,
        language=language,
        report_dir=str(report_dir) if report_dir else None,
        fleet_root=str(fleet_root) if fleet_root else None,
        shard=shard,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(format_backfill_summary(summary))


@app.command("report")
def report_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Report date YYYY-MM-DD (default: today in Europe/Paris)."),
    db: Path | None = DbOpt,
    out: Path = typer.Option(..., "--out", help="Folder for the HTML, PDF and Excel files."),
    language: str = LanguageOpt,
    policy: str | None = PolicyOpt,
) -> None:
    """The finance report for one date: HTML (self-contained), PDF and Excel."""
    from relance.core.dates import parse_date, today
    from tasks.report import report

    _check_language(language)
    db = _check_db_path(db)
    res = report(str(db), parse_date(as_of, "--as-of") or today(), str(out), language=language, policy=policy)
    typer.echo(
        f"relance report for {res['as_of']} in {res['seconds']} s:\n  {res['html']}\n  {res['pdf']}\n  {res['xlsx']}"
    )


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
    lines.append(
        "  replay:   history for the report and metrics (mode replay); never a step for a live run, "
        "which goes on from the last real step"
    )
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
    waiting = esc.get("waiting_by_reason") or {}
    if waiting:
        words = {
            "min_gap": "within the minimum gap",
            "non_business_day": "not a business day in their country",
            "pending_approval": "waiting for an approval",
        }
        lines.append("  waiting:  " + ", ".join(f"{n} units ({words.get(r, r)})" for r, n in waiting.items()))
    held_back = esc.get("held_back_by_reason") or {}
    if held_back:
        words = {
            "below_tolerance": "below the tolerance, not contacted",
            "formal_notice_not_sent": "no formal notice sent: nothing after it",
            "missing_reference_rate": "no reference rate in the policy for their charges: see unit_stage.wait_detail",
        }
        lines.append("  held back: " + ", ".join(f"{n} units ({words.get(r, r)})" for r, n in held_back.items()))
    if esc.get("replay_history_not_taken"):
        lines.append(
            f"  replay:   {esc['replay_history_not_taken']} simulated actions (backfill) in open episodes "
            "are history only (report, metrics): the ladder goes on from the last real step"
        )
    for cur, c in esc.get("charges", {}).items():
        lines.append(f"  charges:  {cur}: {c['actions']} actions, interest {c['interest']}, indemnity {c['indemnity']}")
    return lines


def _report_also(report: dict) -> str:
    """What the report step wrote beside the HTML page (tasks/report/main.py report_paths)."""
    return "also .pdf and .xlsx" + (", and the credit watch as CSV" if report.get("credit_watch_csv") else "")


def format_summary(summary: dict) -> str:
    ing, aged = summary["ingest"], summary["age"]
    lines = [f"relance run for {summary['as_of']} — done in {summary['seconds']} s"]
    lines.append(
        "  ingest:   "
        + ", ".join(f"{n} {e}" for e, n in ing["rows_loaded"].items())
        + f" loaded; {ing['rows_rejected']} rows rejected"
        + (f", {ing['fields_dropped']} contact fields dropped" if ing["fields_dropped"] else "")
    )
    fresh = summary.get("freshness") or {}
    if fresh.get("reasons"):
        how = {
            "stale_allowed": "looks stale, --allow-stale: planned and sent anyway",
            "first_run": "first run on this database, not blocked",
        }.get(fresh.get("verdict"), fresh.get("verdict"))
        lines.append(f"  source:   {how}: " + "; ".join(fresh["reasons"]))
    for cur, c in aged["by_currency"].items():
        lines.append(
            f"  aged:     {cur}: {c['open_invoices']} open invoices, open {c['open_amount']}, overdue {c['overdue']}"
        )
    if not aged["by_currency"]:
        lines.append("  aged:     no open invoices")
    if "escalate" in summary:
        lines.extend(format_ladder(summary["escalate"]))
    if summary.get("dispatch"):
        lines.extend(format_dispatch(summary["dispatch"]))
    lines.append(
        f"  results:  {summary['db']} (tables invoice_snapshot, aged_balance, rejected_rows"
        + (", unit_stage, dunning_actions, deliveries" if "escalate" in summary else "")
        + ")"
    )
    if not summary.get("dispatch"):
        lines.append(f"  outbox:   {summary['outbox']}")
    if summary.get("report"):
        lines.append(f"  report:   {summary['report']['html']} ({_report_also(summary['report'])})")
    if summary.get("write_back"):
        lines.append(f"  metrics written back to {summary['write_back'].get('target', 'PostgreSQL')}")
    if ing["rows_rejected"]:
        lines.append(f"  see why rows were rejected: select * from rejected_rows where as_of = '{summary['as_of']}'")
    return "\n".join(lines)


#: Errors of the file system a user can cause or fix (a full disk, a read-only folder, a path that
#: is a file): one line naming the file, never a traceback.
_FILE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOENT,
    errno.EFBIG,
    errno.ENAMETOOLONG,
}


def describe_os_error(e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"cannot write{where}: {reason} — free some space and run again; deliveries left "
            "in progress are settled by the next run (re-rendered, or reported in doubt)"
        )
    if e.errno == errno.EROFS:
        return f"cannot write{where}: {reason}"
    return f"{e.filename}: {reason}" if e.filename else reason


def describe_duckdb_error(e: Exception) -> str | None:
    """A DuckDB error the user's environment causes (full disk, damaged file), else None (a bug)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    low = text.lower()
    db = f"database {_DB['db']}" if "db" in _DB else "the DuckDB database"
    if "no space left" in low or "disk is full" in low:
        return (
            f"{db} cannot be written: {text} — free some space and run again; deliveries left in "
            "progress are settled by the next run (re-rendered, or reported in doubt)"
        )
    if "corrupt" in low or "checksum" in low or "could not read enough bytes" in low:
        return (
            f"{db} is damaged ({text}): restore it from a backup (a new database would not know "
            "the dunning history nor what was already sent)"
        )
    return None


fleet_app = typer.Typer(
    no_args_is_help=True,
    help="The fleet: the nightly job and backfills split by customer into shards, merged into one database and report.",
)
app.add_typer(fleet_app, name="fleet")
FleetDirOpt = typer.Option(..., "--root", help="The fleet's folder (shards, exports, fleet.duckdb, reports).")
ShardsOpt = typer.Option(
    None, "--shards", min=1, help="Number of shards (required for a new --root; must match its fleet.json)."
)
JobsOpt = typer.Option(2, "--jobs", min=1, help="Shards run at the same time (local processes).")


def format_fleet_summary(summary: dict, what: str) -> str:
    ran, skipped = summary["ran"], summary["skipped"]
    lines = [f"relance fleet {what} — {summary['shards']} shards in {summary['seconds']} s"]
    rows = summary["split"]["rows"]
    lines.append(f"  split:    {', '.join(f'{n} {e}' for e, n in rows.items())} in {summary['split']['seconds']} s")
    lines.append(
        "  shards:   "
        + (", ".join(f"{k} ({summary['shard_seconds'][k]} s)" for k in ran) or "none to run")
        + (f"; already complete: {', '.join(map(str, skipped))}" if skipped else "")
    )
    lines.append(f"  merged:   {summary['db']} (merge and report in {summary['merge_report_seconds']} s)")
    lines.append(f"  report:   {summary['report']['html']} ({_report_also(summary['report'])})")
    if summary.get("write_back"):
        lines.append(f"  metrics written back to {summary['write_back'].get('target', 'PostgreSQL')}")
    return "\n".join(lines)


@fleet_app.command("run")
def fleet_run_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Run date YYYY-MM-DD (default: today in Europe/Paris)."),
    source: str = typer.Option(
        ..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."
    ),
    root: Path = FleetDirOpt,
    shards: int | None = ShardsOpt,
    jobs: int = JobsOpt,
    send: bool = typer.Option(False, "--send", help="Send through the real providers (SendGrid, …)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Approve formal notices without review."),
    source_schema: str | None = SourceSchemaOpt,
    policy: str | None = PolicyOpt,
    metrics_target: str | None = MetricsTargetOpt,
    language: str = LanguageOpt,
    allow_stale: bool = typer.Option(False, "--allow-stale", help="Plan and send even though the source looks stale."),
    as_json: bool = typer.Option(False, "--json", help="Print the fleet summary as JSON."),
) -> None:
    """The nightly job as a fleet: split the source, run each shard (local processes), merge, report."""
    from relance.core.dates import default_as_of, parse_date
    from tasks.fleet.local import fleet_run

    _check_language(language)
    _check_metrics_target(metrics_target)
    summary = fleet_run(
        parse_date(as_of, "--as-of") or default_as_of(),
        source,
        root,
        shards,
        jobs=jobs,
        policy=policy,
        send=send,
        auto_approve=auto_approve,
        source_schema=source_schema,
        metrics_target=metrics_target,
        language=language,
        allow_stale=allow_stale,
    )
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_fleet_summary(summary, "run"))


@fleet_app.command("backfill")
def fleet_backfill_cmd(
    start: str = typer.Option(..., "--start", help="First date to replay (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last date to replay (YYYY-MM-DD), inclusive."),
    source: str = typer.Option(
        ..., "--source", help="Folder of CSV/Parquet files, postgresql:// URL or http(s):// URL."
    ),
    root: Path = FleetDirOpt,
    shards: int | None = ShardsOpt,
    jobs: int = JobsOpt,
    source_schema: str | None = SourceSchemaOpt,
    policy: str | None = PolicyOpt,
    metrics_target: str | None = MetricsTargetOpt,
    language: str = LanguageOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the fleet summary as JSON."),
) -> None:
    """A backfill as a fleet: each shard replays the dates, every date is merged, one report."""
    from relance.core.dates import parse_date
    from tasks.fleet.local import fleet_backfill

    _check_language(language)
    _check_metrics_target(metrics_target)
    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    summary = fleet_backfill(
        first,
        last,
        source,
        root,
        shards,
        jobs=jobs,
        policy=policy,
        source_schema=source_schema,
        metrics_target=metrics_target,
        language=language,
    )
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else format_fleet_summary(summary, "backfill"))


@fleet_app.command("reshard")
def fleet_reshard_cmd(
    root: Path = FleetDirOpt,
    to: int = typer.Option(..., "--to", min=1, help="The new number of shards."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Move each customer's state to its shard among --to shards (offline: no run at the same time)."""
    from tasks.fleet.reshard import reshard

    res = reshard(root, to)
    if as_json:
        typer.echo(json.dumps(res, indent=2, default=str))
        return
    typer.echo(
        f"relance fleet reshard {res['from']} → {res['to']} shards in {res['seconds']} s: "
        f"{res['customers']} customers' state moved, {len(res['tables'])} tables verified by counts"
    )
    for table, n in res["tables"].items():
        typer.echo(f"  {table:<28} {n} rows")


from relance.outcomes_cli import outcomes_app  # noqa: E402  (the `relance outcomes …` verbs, issue 14)

app.add_typer(outcomes_app, name="outcomes")


def main() -> None:
    import duckdb

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        app(standalone_mode=True)
    except UserError as e:
        typer.echo(f"relance: error: {e}", err=True)
        sys.exit(2)
    except OSError as e:
        if e.errno not in _FILE_ERRNOS:
            raise
        typer.echo(f"relance: error: {describe_os_error(e)}", err=True)
        sys.exit(2)
    except duckdb.Error as e:
        message = describe_duckdb_error(e)
        if message is None:
            raise
        typer.echo(f"relance: error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
