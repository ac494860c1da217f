"""outcomes: what debtors said — call and visit outcomes, promises, disputes, payment plans (issue 14).

One rule set (`validate`) for the three ways in: `relance outcomes add` (one outcome),
`relance outcomes import` (the call/visit worklist CSV as relance writes it, with the outcome
columns filled in by the collector) and the `record_outcome` Prefect flow. Each outcome is stored
in the append-only `outcomes` table (sql/ddl/005_outcomes.sql) with who and when; the ladder reads
it in SQL (sql/intermediate/int_outcome_holds.sql) as dated holds, point in time.

Kinds and what they do (docs/policy.md "Outcomes"):
  reached, no_answer, refused   recorded only (history, metrics)
  wrong_number                  the customer's phone is marked bad (contact_flags, as a bounce marks an
                                email): calls and SMS fall back per the contract
  promise                       amount and date: holds the unit until date + promise_grace_days
  plan                          instalments (date:amount, …): holds the plan's invoices (or the unit)
                                while each instalment is paid by its date + instalment_grace_days
  dispute                       invoices and a reason code: holds those invoices until resolved
  paid_claimed                  holds the unit paid_claimed_hold_days for the payment to appear
  resolution                    (`relance outcomes resolve`) closes a dispute: credit_note_expected,
                                rejected or paid

A file is applied atomically: all its rows are valid, or nothing is written and every bad row is
listed with its spreadsheet row number and the reason. outcome_id is a hash of the content, so
re-importing the same file (or re-adding the same outcome) changes nothing.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from relance.core.errors import UserError
from relance.core.policy import MAX_AMOUNT, Policy, currency_codes, load_policy
from tasks import warehouse

KINDS = ("reached", "no_answer", "wrong_number", "promise", "dispute", "plan", "paid_claimed", "refused")
#: outcomes the debtor is held to, and which get a written recap (seed 004)
COMMITMENTS = ("promise", "plan", "dispute")
RESOLUTIONS = ("credit_note_expected", "rejected", "paid")
#: kinds that concern one unit (customer, currency) and so need a currency
MONEY_KINDS = ("promise", "plan", "paid_claimed", "dispute")

_AMOUNT = re.compile(r"^\d{1,16}(\.\d{1,2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FORMULA_QUOTED = re.compile(r"^'[=@\t\r+-]")

#: the worklist CSV's outcome columns (tasks/dispatch/worklists.py writes them empty)
IMPORT_COLUMNS = {
    "outcome": "kind",
    "outcome_amount": "amount",
    "outcome_date": "date",
    "outcome_instalments": "instalments",
    "outcome_invoices": "invoices",
    "outcome_reason": "reason",
    "outcome_note": "note",
    "outcome_by": "by",
    "outcome_on": "on",
}
MAX_NOTE = 2000


@dataclass
class Outcome:
    customer_id: str
    kind: str
    said_on: date
    recorded_by: str
    currency: str | None = None
    amount: Decimal | None = None
    promised_date: date | None = None
    hold_until: date | None = None
    invoice_ids: list[str] | None = None
    reason: str | None = None
    note: str | None = None
    phone: str | None = None
    resolves_id: str | None = None
    resolution: str | None = None
    action_id: str | None = None
    instalments: list[tuple[date, Decimal, date]] = field(default_factory=list)  # (due, amount, grace_until)
    source: str = "cli"
    source_file: str | None = None
    source_row: int | None = None

    @property
    def outcome_id(self) -> str:
        """A hash of what was said (not of who typed it, when, nor where from): the same outcome
        recorded twice is one row."""
        content = [
            self.customer_id,
            self.currency,
            self.kind,
            self.said_on.isoformat(),
            None if self.amount is None else f"{self.amount:.2f}",
            None if self.promised_date is None else self.promised_date.isoformat(),
            sorted(self.invoice_ids or []),
            self.reason,
            self.resolves_id,
            self.resolution,
            [(d.isoformat(), f"{a:.2f}") for d, a, _ in self.instalments],
            self.note,
            self.phone,
        ]
        digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()
        return "O-" + digest[:20]

    def row(self, recorded_at: datetime) -> dict[str, Any]:
        return {
            "outcome_id": self.outcome_id,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "kind": self.kind,
            "said_on": self.said_on,
            "amount": self.amount,
            "promised_date": self.promised_date,
            "hold_until": self.hold_until,
            "invoice_ids": self.invoice_ids,
            "reason": self.reason,
            "resolves_id": self.resolves_id,
            "resolution": self.resolution,
            "note": self.note,
            "phone": self.phone,
            "action_id": self.action_id,
            "source": self.source,
            "source_file": self.source_file,
            "source_row": self.source_row,
            "recorded_by": self.recorded_by,
            "recorded_at": recorded_at,
        }


@dataclass
class Known:
    """What the rules check against: the customers and invoices last loaded (stg_*), the open
    disputes, the policy and today's date."""

    policy: Policy
    today: date
    customers: dict[str, str | None]  # customer_id -> phone
    invoices: dict[str, tuple[str, str]]  # invoice_id -> (customer_id, currency)
    currencies: dict[str, set[str]]  # customer_id -> its invoices' currencies
    disputes: dict[str, dict] = field(default_factory=dict)  # outcome_id -> dispute row

    @classmethod
    def load(cls, con, policy: Policy, today: date) -> Known:
        if not warehouse.scalar(
            con, "select count(*) from information_schema.tables where table_name = 'stg_customers'"
        ):
            raise UserError("this database has no customers loaded yet: run `relance run` (or backfill) on it first")
        customers = dict(con.execute("select customer_id, phone from stg_customers").fetchall())
        invoices, currencies = {}, {}
        for inv, cust, cur in con.execute("select invoice_id, customer_id, currency from stg_invoices").fetchall():
            invoices[inv] = (cust, cur)
            currencies.setdefault(cust, set()).add(cur)
        disputes = {}
        for row in con.execute(
            """select o.outcome_id, o.customer_id, o.currency, o.invoice_ids, o.said_on,
                      (select min(r.said_on) from outcomes r where r.resolves_id = o.outcome_id) as resolved_on
               from outcomes o where o.kind = 'dispute'"""
        ).fetchall():
            disputes[row[0]] = dict(
                zip(("outcome_id", "customer_id", "currency", "invoice_ids", "said_on", "resolved_on"), row)
            )
        return cls(policy, today, customers, invoices, currencies, disputes)


# -- the rule set ---------------------------------------------------------------------------------


def _text(raw: dict, key: str) -> str | None:
    v = raw.get(key)
    if v is None:
        return None
    v = str(v).strip()
    if _FORMULA_QUOTED.match(v):  # a cell relance's worklist prefixed with ' to keep it text
        v = v[1:]
    return v or None


def parse_date(value: str, what: str, problems: list[str]) -> date | None:
    if not _DATE.match(value):
        problems.append(f"{what} {value!r} is not a date written YYYY-MM-DD")
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        problems.append(f"{what} {value!r} is not a real date")
        return None
    if d.year < 1900:
        problems.append(f"{what} {value} is before 1900")
        return None
    return d


def parse_amount(value: str, what: str, problems: list[str]) -> Decimal | None:
    if "," in value and _AMOUNT.match(value.replace(",", ".")):
        problems.append(f"{what} {value!r}: write the decimals after a '.' ({value.replace(',', '.')})")
        return None
    if not _AMOUNT.match(value):
        problems.append(f"{what} {value!r} is not an amount like 500.00 (digits, a '.' and at most 2 decimals, > 0)")
        return None
    try:
        a = Decimal(value).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - the pattern allows only decimals
        problems.append(f"{what} {value!r} is not an amount")
        return None
    if a <= 0:
        problems.append(f"{what} must be more than 0.00")
        return None
    if a > MAX_AMOUNT:
        problems.append(f"{what} {value} is beyond {MAX_AMOUNT}")
        return None
    return a


def parse_instalments(value: str, problems: list[str]) -> list[tuple[date, Decimal]]:
    """`2026-12-10:500.00,2027-01-10:500.00` (commas, semicolons or spaces between instalments)."""
    out: list[tuple[date, Decimal]] = []
    parts = [p for p in re.split(r"[,;\s]+", value) if p]
    for i, part in enumerate(parts, start=1):
        if part.count(":") != 1:
            problems.append(f"instalment {i} {part!r} is not DATE:AMOUNT like 2026-12-10:500.00")
            continue
        d, a = part.split(":")
        n = len(problems)
        day = parse_date(d, f"instalment {i} date", problems)
        amount = parse_amount(a, f"instalment {i} amount", problems)
        if len(problems) == n:
            out.append((day, amount))  # type: ignore[arg-type]
    return out


def _split_ids(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;]", value) if p.strip()]


def validate(raw: dict[str, Any], known: Known, *, default_by: str) -> tuple[Outcome | None, list[str]]:
    """The one rule set. `raw`: strings (or None) under customer, kind, currency, amount, date,
    invoices, instalments, reason, note, by, on, phone, action_id. Returns the outcome, or None
    and the problems (each a sentence a collector can act on)."""
    problems: list[str] = []
    pol = known.policy.outcomes
    customer = _text(raw, "customer")
    kind = (_text(raw, "kind") or "").lower() or None
    if customer is None:
        problems.append("customer_id is missing")
    elif customer not in known.customers:
        problems.append(f"customer {customer!r} is not a known customer")
        customer = None
    if kind is None:
        problems.append("the outcome kind is missing (one of " + ", ".join(KINDS) + ")")
    elif kind not in KINDS:
        problems.append(f"outcome {kind!r} is not one of " + ", ".join(KINDS))
        kind = None

    said_on = known.today
    if (on := _text(raw, "on")) is not None:
        said_on = parse_date(on, "the day it was said (on)", problems) or known.today
        if said_on > known.today:
            problems.append(f"the day it was said ({said_on}) is after today ({known.today})")
    by = _text(raw, "by") or default_by
    if len(by) > 100:
        problems.append("the collector's name (by) is longer than 100 characters")
    note = _text(raw, "note")
    if note is not None and len(note) > MAX_NOTE:
        problems.append(f"the note is longer than {MAX_NOTE} characters")

    currency = _text(raw, "currency")
    if currency is not None:
        currency = currency.upper()
        if currency not in currency_codes():
            problems.append(f"currency {currency!r} is not an ISO 4217 code like EUR")
            currency = None
    elif customer:
        held = known.currencies.get(customer, set())
        if len(held) == 1:
            currency = next(iter(held))
        elif len(held) > 1 and kind in MONEY_KINDS:
            problems.append(f"customer {customer} has invoices in {', '.join(sorted(held))}: say which currency")
        elif not held:
            currency = "EUR"

    amount_text, date_text = _text(raw, "amount"), _text(raw, "date")
    invoices_text, reason, inst_text = _text(raw, "invoices"), _text(raw, "reason"), _text(raw, "instalments")
    amount = parse_amount(amount_text, "amount", problems) if amount_text is not None else None
    promised = parse_date(date_text, "date", problems) if date_text is not None else None
    invoice_ids = _split_ids(invoices_text) if invoices_text is not None else None
    reason = reason.lower() if reason else None

    def unused(value, what):
        if value is not None and kind is not None:
            problems.append(f"{what} means nothing for outcome {kind}: leave it empty")

    hold_until = None
    instalments: list[tuple[date, Decimal, date]] = []
    if kind == "promise":
        if amount_text is None:
            problems.append("a promise needs the amount promised (amount)")
        if date_text is None:
            problems.append("a promise needs the date promised (date)")
        if promised and promised < said_on:
            problems.append(f"the promised date {promised} is before the day it was said ({said_on})")
        if promised:
            hold_until = promised + timedelta(days=pol.promise_grace_days)
        unused(reason, "a reason"), unused(inst_text, "instalments")
    elif kind == "plan":
        if inst_text is None:
            problems.append("a plan needs its instalments (DATE:AMOUNT,… e.g. 2026-12-10:500.00,2027-01-10:500.00)")
        else:
            parsed = parse_instalments(inst_text, problems)
            days = [d for d, _ in parsed]
            if parsed and any(b <= a for a, b in zip(days, days[1:])):
                problems.append("the instalments' dates must increase (one instalment a date)")
            if parsed and days[0] < said_on:
                problems.append(f"the first instalment ({days[0]}) is before the day the plan was agreed ({said_on})")
            total = sum((a for _, a in parsed), Decimal("0.00"))
            if amount is not None and parsed and total != amount:
                problems.append(f"the instalments sum to {total:.2f}, not the plan's amount {amount:.2f}")
            if parsed:
                amount = total
                instalments = [(d, a, d + timedelta(days=pol.instalment_grace_days)) for d, a in parsed]
                promised, hold_until = days[-1], instalments[-1][2]
        if date_text is not None:
            problems.append("a plan's dates are its instalments': leave date empty")
        unused(reason, "a reason")
    elif kind == "dispute":
        if not invoice_ids:
            problems.append("a dispute names the disputed invoices (invoices)")
        if reason is None:
            problems.append("a dispute needs a reason code: " + ", ".join(pol.dispute_reasons))
        elif reason not in pol.dispute_reasons:
            problems.append(f"reason {reason!r} is not one of " + ", ".join(pol.dispute_reasons))
        unused(amount_text, "an amount"), unused(date_text, "a date"), unused(inst_text, "instalments")
    elif kind == "paid_claimed":
        hold_until = said_on + timedelta(days=pol.paid_claimed_hold_days)
        unused(date_text, "a date"), unused(inst_text, "instalments"), unused(reason, "a reason")
    elif kind is not None:  # reached, no_answer, wrong_number, refused
        unused(amount_text, "an amount"), unused(date_text, "a date"), unused(inst_text, "instalments")
        unused(reason, "a reason"), unused(invoices_text, "invoices")

    if invoice_ids and customer:
        for inv in invoice_ids:
            owner = known.invoices.get(inv)
            if owner is None:
                problems.append(f"invoice {inv!r} is not a known invoice")
            elif owner[0] != customer:
                problems.append(f"invoice {inv} belongs to customer {owner[0]}, not {customer}")
            elif currency and owner[1] != currency:
                problems.append(f"invoice {inv} is in {owner[1]}, not {currency}")
        if len(set(invoice_ids)) != len(invoice_ids):
            problems.append("an invoice is listed twice")
        invoice_ids = sorted(set(invoice_ids))

    phone = None
    if kind == "wrong_number" and customer:
        phone = _text(raw, "phone") or known.customers.get(customer)
        if phone is None:
            problems.append(f"customer {customer} has no phone number to mark wrong")

    if problems:
        return None, problems
    return Outcome(
        customer_id=customer,
        kind=kind,
        said_on=said_on,
        recorded_by=by,  # type: ignore[arg-type]
        currency=currency,
        amount=amount,
        promised_date=promised,
        hold_until=hold_until,
        invoice_ids=invoice_ids or None,
        reason=reason,
        note=note,
        phone=phone,
        instalments=instalments,
        action_id=_text(raw, "action_id"),
    ), []


def validate_resolution(raw: dict[str, Any], known: Known, *, default_by: str) -> tuple[Outcome | None, list[str]]:
    """A dispute's resolution: `dispute` (its outcome_id) or `customer` with one open dispute, and
    `resolution` (credit_note_expected, rejected, paid)."""
    problems: list[str] = []
    dispute_id, customer = _text(raw, "dispute"), _text(raw, "customer")
    resolution = (_text(raw, "resolution") or "").lower() or None
    said_on = known.today
    if (on := _text(raw, "on")) is not None:
        said_on = parse_date(on, "the day it was resolved (on)", problems) or known.today
        if said_on > known.today:
            problems.append(f"the day it was resolved ({said_on}) is after today ({known.today})")
    if resolution not in RESOLUTIONS:
        problems.append(f"resolution {resolution!r} is not one of " + ", ".join(RESOLUTIONS))
    dispute = None
    if dispute_id is not None:
        dispute = known.disputes.get(dispute_id)
        if dispute is None:
            problems.append(f"{dispute_id!r} is not a recorded dispute (see `relance outcomes list --kind dispute`)")
    elif customer is not None:
        open_ = [d for d in known.disputes.values() if d["customer_id"] == customer and d["resolved_on"] is None]
        if len(open_) != 1:
            problems.append(
                f"customer {customer} has {len(open_)} open disputes: name the one with --dispute "
                + ", ".join(d["outcome_id"] for d in open_)
            )
        else:
            dispute = open_[0]
    else:
        problems.append("say which dispute: --dispute OUTCOME_ID (or --customer ID with a single open dispute)")
    if dispute is not None:
        if dispute["resolved_on"] is not None:
            problems.append(f"dispute {dispute['outcome_id']} was already resolved on {dispute['resolved_on']}")
        if said_on < dispute["said_on"]:
            problems.append(f"the resolution ({said_on}) is before the dispute ({dispute['said_on']})")
    if problems:
        return None, problems
    return Outcome(
        customer_id=dispute["customer_id"],
        kind="resolution",
        said_on=said_on,  # type: ignore[index]
        recorded_by=_text(raw, "by") or default_by,
        currency=dispute["currency"],  # type: ignore[index]
        invoice_ids=list(dispute["invoice_ids"] or []),
        resolves_id=dispute["outcome_id"],  # type: ignore[index]
        resolution=resolution,
        note=_text(raw, "note"),
    ), []


# -- writing ----------------------------------------------------------------------------------------

_COLUMNS = (
    "outcome_id",
    "customer_id",
    "currency",
    "kind",
    "said_on",
    "amount",
    "promised_date",
    "hold_until",
    "invoice_ids",
    "reason",
    "resolves_id",
    "resolution",
    "note",
    "phone",
    "action_id",
    "source",
    "source_file",
    "source_row",
    "recorded_by",
    "recorded_at",
)


def write(con, outcomes: list[Outcome], now: datetime | None = None) -> dict[str, int]:
    """Append the outcomes in one transaction (an id already there is left as it is); mark the
    phones of wrong_number outcomes bad. Returns {recorded, already_recorded}."""
    import pyarrow as pa

    now = now or datetime.now(UTC).replace(tzinfo=None)
    unique: dict[str, Outcome] = {}
    for o in outcomes:
        unique.setdefault(o.outcome_id, o)
    rows = [o.row(now) for o in unique.values()]
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("outcome_id", pa.string()),
                ("customer_id", pa.string()),
                ("currency", pa.string()),
                ("kind", pa.string()),
                ("said_on", pa.date32()),
                ("amount", pa.decimal128(18, 2)),
                ("promised_date", pa.date32()),
                ("hold_until", pa.date32()),
                ("invoice_ids", pa.list_(pa.string())),
                ("reason", pa.string()),
                ("resolves_id", pa.string()),
                ("resolution", pa.string()),
                ("note", pa.string()),
                ("phone", pa.string()),
                ("action_id", pa.string()),
                ("source", pa.string()),
                ("source_file", pa.string()),
                ("source_row", pa.int32()),
                ("recorded_by", pa.string()),
                ("recorded_at", pa.timestamp("us")),
            ]
        ),
    )
    inst = pa.Table.from_pylist(
        [
            {"outcome_id": o.outcome_id, "instalment_no": n, "due_date": d, "amount": a, "grace_until": g}
            for o in unique.values()
            for n, (d, a, g) in enumerate(o.instalments, start=1)
        ],
        schema=pa.schema(
            [
                ("outcome_id", pa.string()),
                ("instalment_no", pa.int32()),
                ("due_date", pa.date32()),
                ("amount", pa.decimal128(18, 2)),
                ("grace_until", pa.date32()),
            ]
        ),
    )
    con.register("outcomes_incoming", table)
    con.register("instalments_incoming", inst)
    try:
        with warehouse.transaction(con):
            con.execute(
                "create or replace temp table outcomes_new as select * from outcomes_incoming "
                "where outcome_id not in (select outcome_id from outcomes)"
            )
            new = warehouse.scalar(con, "select count(*) from outcomes_new")
            con.execute(f"insert into outcomes ({', '.join(_COLUMNS)}) select {', '.join(_COLUMNS)} from outcomes_new")
            con.execute(
                "insert or ignore into outcome_instalments by name select * from instalments_incoming "
                "where outcome_id in (select outcome_id from outcomes_new)"
            )
            # wrong_number: the phone is bad for this customer while it is still its number
            # (contact_flags, the mechanism of email bounces: tasks/events.py; a new number lifts it)
            con.execute(
                """
                insert or replace into contact_flags (customer_id, channel, address, flag, reason, delivery_id, flagged_at)
                select customer_id, 'phone', phone, 'bad',
                       'wrong number (outcome ' || outcome_id || ', ' || recorded_by || ', ' || said_on || ')',
                       null, recorded_at
                from outcomes_new where kind = 'wrong_number'
                qualify row_number() over (partition by customer_id order by said_on desc, outcome_id) = 1
                """
            )
    finally:
        con.unregister("outcomes_incoming")
        con.unregister("instalments_incoming")
    return {"recorded": new, "already_recorded": len(rows) - new, "read": len(outcomes)}


def _today(today: date | None) -> date:
    return today or datetime.now(UTC).date()


def _known(con, policy: str | Path | None, today: date | None) -> Known:
    warehouse.ensure_schema(con)
    return Known.load(con, load_policy(policy), _today(today))


def add(
    db: str | Path,
    fields: dict[str, Any],
    *,
    policy: str | Path | None = None,
    today: date | None = None,
    source: str = "cli",
) -> dict:
    """Record one outcome (the CLI's `outcomes add`, the Prefect flow). A UserError lists the problems."""
    with warehouse.open_db(db) as con:
        known = _known(con, policy, today)
        outcome, problems = validate(fields, known, default_by=getpass.getuser())
        if problems:
            raise UserError("outcome not recorded: " + "; ".join(problems))
        outcome.source = source  # type: ignore[union-attr]
        counts = write(con, [outcome])  # type: ignore[list-item]
    return {
        "outcome_id": outcome.outcome_id,
        **counts,
        "kind": outcome.kind,  # type: ignore[union-attr]
        "hold_until": outcome.hold_until,
    }  # type: ignore[union-attr]


def resolve(
    db: str | Path, fields: dict[str, Any], *, policy: str | Path | None = None, today: date | None = None
) -> dict:
    """Record a dispute's resolution (`relance outcomes resolve`)."""
    with warehouse.open_db(db) as con:
        known = _known(con, policy, today)
        outcome, problems = validate_resolution(fields, known, default_by=getpass.getuser())
        if problems:
            raise UserError("resolution not recorded: " + "; ".join(problems))
        counts = write(con, [outcome])  # type: ignore[list-item]
    return {"outcome_id": outcome.outcome_id, "dispute": outcome.resolves_id, **counts}  # type: ignore[union-attr]


def read_worklist(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the records of a worklist CSV, each with its spreadsheet row number (header =
    1, blank lines count, a quoted value over several lines stays in its row). Comma or semicolon."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"outcomes file {path} is not UTF-8 text: save it as CSV UTF-8") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not records or not records[0]:
        raise UserError(f"outcomes file {path} is empty: expected the worklist's header line")
    header = [h.strip().lower() for h in records[0]]
    for name in set(header):
        if header.count(name) > 1 and name:
            raise UserError(f"outcomes file {path}: the header names the column {name!r} twice")
    missing = [c for c in ("customer_id", "outcome") if c not in header]
    if missing:
        raise UserError(
            f"outcomes file {path}: missing column(s) {', '.join(missing)} (expected the call or visit "
            "worklist relance wrote, with the outcome columns filled in)"
        )
    return header, [(n, rec) for n, rec in enumerate(records[1:], start=2)]


def import_file(
    db: str | Path,
    path: str | Path,
    *,
    policy: str | Path | None = None,
    today: date | None = None,
    by: str | None = None,
) -> dict:
    """Import a filled-in worklist: every row with an outcome is validated; if any is bad, nothing
    is written and the UserError lists each bad row (row number and reasons)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"outcomes file {path} does not exist")
    header, records = read_worklist(path)
    outcomes: list[Outcome] = []
    bad: list[str] = []
    skipped = 0
    with warehouse.open_db(db) as con:
        known = _known(con, policy, today)
        for row_no, rec in records:
            if not any(v.strip() for v in rec):
                continue  # a blank line: nothing to load
            if len(rec) != len(header):
                bad.append(f"row {row_no}: {len(rec)} fields where the header has {len(header)}")
                continue
            cells = dict(zip(header, rec))
            raw = {IMPORT_COLUMNS[k]: v for k, v in cells.items() if k in IMPORT_COLUMNS}
            if not (raw.get("kind") or "").strip():
                skipped += 1  # not called yet: nothing to record
                continue
            raw.update(
                customer=cells.get("customer_id"),
                currency=cells.get("currency"),
                phone=cells.get("phone"),
                action_id=cells.get("action_id"),
            )
            outcome, problems = validate(
                raw, known, default_by=by or (cells.get("collector") or "").strip() or getpass.getuser()
            )
            if problems:
                bad.append(f"row {row_no}: " + "; ".join(problems))
                continue
            outcome.source, outcome.source_file, outcome.source_row = "import", path.name, row_no  # type: ignore[union-attr]
            outcomes.append(outcome)  # type: ignore[arg-type]
        if bad:
            shown = bad[:50] + ([f"… and {len(bad) - 50} more rows"] if len(bad) > 50 else [])
            raise UserError(
                f"outcomes file {path}: nothing imported, {len(bad)} row(s) to fix:\n  " + "\n  ".join(shown)
            )
        counts = write(con, outcomes)
    return {"file": str(path), **counts, "rows_without_outcome": skipped}


def list_outcomes(db: str | Path, *, customer: str | None = None, kind: str | None = None) -> list[dict]:
    with warehouse.open_db(db, read_only=True) as con:
        cur = con.execute(
            """select outcome_id, said_on, customer_id, currency, kind, amount, promised_date, hold_until,
                      invoice_ids, reason, resolves_id, resolution, recorded_by
               from outcomes
               where ($customer is null or customer_id = $customer) and ($kind is null or kind = $kind)
               order by said_on, recorded_at, outcome_id""",
            {"customer": customer, "kind": kind},
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
