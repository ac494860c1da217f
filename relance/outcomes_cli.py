"""`relance outcomes …`: record what debtors said (tasks/outcomes.py; docs/policy.md "Outcomes")."""

from __future__ import annotations

from pathlib import Path

import typer

from relance.core.errors import UserError

outcomes_app = typer.Typer(
    no_args_is_help=True,
    help="Record what debtors said: call outcomes, promises, disputes, payment plans.",
)

DbOpt = typer.Option(Path(".relance/relance.duckdb"), "--db", help="DuckDB file.")
PolicyOpt = typer.Option(None, "--policy", help="Policy YAML (default: the shipped policies/default.yaml).")


def _db(db: Path) -> str:
    if not db.is_file():
        raise UserError(f"database {db} does not exist: give the --db that `relance run` writes")
    return str(db)


@outcomes_app.command("add")
def add_cmd(
    db: Path = DbOpt,
    customer: str = typer.Option(..., "--customer", help="Customer id."),
    kind: str = typer.Option(
        ..., "--kind", help="reached, no_answer, wrong_number, promise, dispute, plan, paid_claimed, refused."
    ),
    currency: str | None = typer.Option(
        None, "--currency", help="The unit's currency (default: the customer's only one)."
    ),
    amount: str | None = typer.Option(None, "--amount", help="promise: the amount promised; plan: its total."),
    on_date: str | None = typer.Option(None, "--date", help="promise: the date promised (YYYY-MM-DD)."),
    invoices: str | None = typer.Option(None, "--invoices", help="dispute (or plan): invoice ids, comma-separated."),
    instalments: str | None = typer.Option(
        None, "--instalments", help="plan: DATE:AMOUNT,… e.g. 2026-12-10:500.00,2027-01-10:500.00"
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="dispute: price, quantity, quality, not_received, already_paid, other."
    ),
    note: str | None = typer.Option(None, "--note", help="Free text."),
    by: str | None = typer.Option(None, "--by", help="Who recorded it (default: the login name)."),
    said_on: str | None = typer.Option(None, "--on", help="When it was said (default: today)."),
    policy: Path | None = PolicyOpt,
) -> None:
    """Record one outcome."""
    from tasks import outcomes

    res = outcomes.add(
        _db(db),
        {
            "customer": customer,
            "kind": kind,
            "currency": currency,
            "amount": amount,
            "date": on_date,
            "invoices": invoices,
            "instalments": instalments,
            "reason": reason,
            "note": note,
            "by": by,
            "on": said_on,
        },
        policy=policy,
    )
    what = "recorded" if res["recorded"] else "already recorded (nothing changed)"
    until = f"; holds until {res['hold_until']}" if res.get("hold_until") else ""
    typer.echo(f"outcome {res['outcome_id']} ({res['kind']}) {what}{until}")


@outcomes_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="The call or visit worklist CSV, outcome columns filled in."),
    db: Path = DbOpt,
    by: str | None = typer.Option(None, "--by", help="Who recorded them (default: each row's collector)."),
    policy: Path | None = PolicyOpt,
) -> None:
    """Import a filled-in worklist: all rows or none (every bad row is listed with its reason)."""
    from tasks import outcomes

    res = outcomes.import_file(_db(db), file, policy=policy, by=by)
    typer.echo(
        f"{file}: {res['recorded']} outcomes recorded, {res['already_recorded']} already recorded, "
        f"{res['rows_without_outcome']} rows without an outcome"
    )


@outcomes_app.command("resolve")
def resolve_cmd(
    db: Path = DbOpt,
    resolution: str = typer.Option(..., "--resolution", help="credit_note_expected, rejected or paid."),
    dispute: str | None = typer.Option(None, "--dispute", help="The dispute's outcome id."),
    customer: str | None = typer.Option(None, "--customer", help="Or the customer, when it has one open dispute."),
    note: str | None = typer.Option(None, "--note", help="Free text."),
    by: str | None = typer.Option(None, "--by", help="Who decided (default: the login name)."),
    said_on: str | None = typer.Option(None, "--on", help="When it was resolved (default: today)."),
    policy: Path | None = PolicyOpt,
) -> None:
    """Resolve a dispute: credit_note_expected, rejected or paid."""
    from tasks import outcomes

    res = outcomes.resolve(
        _db(db),
        {"dispute": dispute, "customer": customer, "resolution": resolution, "note": note, "by": by, "on": said_on},
        policy=policy,
    )
    what = "recorded" if res["recorded"] else "already recorded (nothing changed)"
    typer.echo(f"dispute {res['dispute']}: resolution {res['outcome_id']} {what}")


@outcomes_app.command("list")
def list_cmd(
    db: Path = DbOpt,
    customer: str | None = typer.Option(None, "--customer"),
    kind: str | None = typer.Option(None, "--kind"),
) -> None:
    """The recorded outcomes, oldest first."""
    from tasks import outcomes

    for r in outcomes.list_outcomes(_db(db), customer=customer, kind=kind):
        extra = " ".join(
            str(x)
            for x in (
                r["amount"],
                r["promised_date"],
                ",".join(r["invoice_ids"] or []) or None,
                r["reason"],
                r["resolution"],
            )
            if x
        )
        typer.echo(
            f"{r['outcome_id']}  {r['said_on']}  {r['customer_id']} {r['currency'] or ''}  {r['kind']}  {extra}  by {r['recorded_by']}"
        )
