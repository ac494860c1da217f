"""The deliveries ledger: nothing sent twice, nothing lost.

Every message goes through the same three writes, keyed by `delivery_id`:

1. **claim** — `planned → sending` (attempts + 1, provider, updated_at), committed in DuckDB
   *before* the provider is called. Only rows still `planned` are claimed, so a delivery that was
   sent (or is being sent) can never be picked again.
2. the provider call (SendGrid, the SMS gateway, the outbox files …);
3. **record** — `sending → sent` (provider_message_id, sent_at, artifact_path) or `failed`
   (last_error), or back to `planned` when it is certain nothing left (the provider refused our
   credentials before accepting anything), or `in_doubt` when nobody can tell (a network timeout
   after the request was written).

A crash between 2 and 3 leaves the row `sending`. The next run turns it into `in_doubt`, reports
it, and never sends it again by itself: a person checks the provider (SendGrid's activity feed
filtered on the custom argument `delivery_id`) and runs `relance resolve --delivery ID --sent` or
`--not-sent` (`resolve()` below); `--not-sent` puts it back to `planned` for the next run.
Rows claimed by a local provider are the exception (`outbox`, and with --send `print`, `worklist`,
`dossier`): they only write files that nobody has used yet — the print batch is assembled only
from letters already recorded — so the next run simply renders them again.

Each status change is also appended to `delivery_events` (who, when, why): with the artefacts in
the outbox, that journal is the evidence of what was sent.

DuckDB is only touched from the thread that runs the batch (the task's main thread); HTTP calls
run in a thread pool and hand their results back to it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from relance.core.errors import UserError
from relance.core.paths import SQL_DIR
from tasks import warehouse
from tasks.audit import current_run_id

#: Statuses a run may act on or leave behind (contract §4 plus `sending`, `in_doubt`).
TERMINAL = ("sent", "failed", "skipped", "undeliverable", "simulated")
PROVIDER_OUTBOX = "outbox"
#: Providers whose "sending" only writes files under the outbox (nothing reaches a customer until
#: a person prints or calls): a run stopped while writing them simply renders them again.
LOCAL_PROVIDERS = ("outbox", "print", "worklist", "dossier")

#: Test and operations hooks, called with (channel, results) after the provider answered and
#: before the results are recorded — the window a crash would hit.
AFTER_PROVIDER_HOOKS: list[Callable[[str, list[Result]], None]] = []


@dataclass
class Result:
    """What happened to one delivery at the provider."""

    delivery_id: str
    status: str  # sent | failed | planned (certainly not sent) | in_doubt | deferred (never claimed)
    provider: str
    provider_message_id: str | None = None
    error: str | None = None
    artifact_path: str | None = None
    sent_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def file_written(cls, delivery_id: str, provider: str, path: Any, now: datetime, **extra: Any) -> Result:
        """A delivery whose document is written to the outbox (a letter, a dossier, a recap PDF): sent,
        with the file as its artifact and `<provider>:<delivery_id>` as its message id."""
        return cls(
            delivery_id,
            "sent",
            provider,
            provider_message_id=f"{provider}:{delivery_id}",
            artifact_path=str(path),
            sent_at=now,
            extra=extra,
        )


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return utcnow()
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def ensure_tables(con) -> None:
    con.execute((SQL_DIR / "ddl" / "003_dispatch.sql").read_text(encoding="utf-8"))
    # the statements of late-payment charges, approved and sent through this ledger (tasks/late_charges.py)
    con.execute((SQL_DIR / "ddl" / "006_late_charges.sql").read_text(encoding="utf-8"))
    if table_exists(con, "deliveries"):  # provider events' columns and contact_flags, read by contacts.sql
        con.execute((SQL_DIR / "ddl" / "004_events.sql").read_text(encoding="utf-8"))


def query(con, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run sql/dispatch/<name>.sql (parameters bound by value) and return rows as dicts."""
    sql = (SQL_DIR / "dispatch" / f"{name}.sql").read_text(encoding="utf-8")
    try:
        bound = warehouse.bind_params(sql, params or {})
    except KeyError as e:
        raise KeyError(f"sql/dispatch/{name}.sql: {e.args[0]}") from None
    cur = con.execute(sql, bound)  # same connection: temp tables are visible
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def table_exists(con, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_name = ? and table_schema = 'main'",
            [name],
        ).fetchone()[0]
    )


def _register(con, name: str, schema: dict[str, pa.DataType], rows: Sequence[dict[str, Any]]) -> None:
    cols = {k: [r.get(k) for r in rows] for k in schema}
    table = pa.table({k: pa.array(v, type=schema[k]) for k, v in cols.items()})
    con.register(name, table)


_EVENT_SCHEMA = {
    "delivery_id": pa.string(),
    "status": pa.string(),
    "detail": pa.string(),
}


def transition(
    con,
    rows: Iterable[dict[str, Any]],
    *,
    actor: str,
    now: datetime,
    from_statuses: tuple[str, ...] = ("planned",),
    set_error: bool = True,
) -> list[str]:
    """Move deliveries (dicts with delivery_id, status, detail[, channel]) to a new status.

    Only rows currently in one of `from_statuses` move; returns the ids that moved. The detail
    becomes last_error (when set_error) and the event's detail. A `channel` key changes the channel
    (a fallback to letter).
    """
    rows = [dict(r) for r in rows]
    if not rows:
        return []
    for r in rows:
        r.setdefault("channel", None)
    schema = dict(_EVENT_SCHEMA, channel=pa.string())
    _register(con, "dispatch_transition", schema, rows)
    try:
        with warehouse.transaction(con):
            moved = con.execute(
                f"""
                update deliveries set
                    status = t.status,
                    -- a fallback keeps the channel it replaces in fallback_from (sql/ddl)
                    fallback_from = case when t.channel is not null and t.channel <> deliveries.channel
                        then concat_ws(',', deliveries.fallback_from, deliveries.channel) else deliveries.fallback_from end,
                    channel = coalesce(t.channel, deliveries.channel),
                    last_error = {"t.detail" if set_error else "deliveries.last_error"},
                    updated_at = $now
                from dispatch_transition t
                where deliveries.delivery_id = t.delivery_id
                  and list_contains($from, deliveries.status)
                returning deliveries.delivery_id
                """,
                {"now": now, "from": list(from_statuses)},
            ).fetchall()
            ids = [r[0] for r in moved]
            if ids:
                con.execute(
                    """
                    insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
                    select t.delivery_id, $now, t.status, null, d.channel, d.provider, $actor, t.detail
                    from dispatch_transition t join deliveries d using (delivery_id)
                    where t.delivery_id in (select unnest($ids::varchar[]))
                    """,
                    {"now": now, "actor": actor, "ids": ids},
                )
    finally:
        con.unregister("dispatch_transition")
    return ids


def recover_in_doubt(con, now: datetime) -> dict[str, list[str]]:
    """At the start of a run: `sending` rows left by a run that stopped mid-way.

    Real providers (sendgrid, sms) → `in_doubt` (reported, never re-sent by itself); local
    providers (files only) → `planned` again.
    """
    with warehouse.transaction(con):
        reset = [
            r[0]
            for r in con.execute(
                """
                update deliveries set status = 'planned', updated_at = $now,
                    last_error = 'a previous run stopped while writing its files; written again'
                where status = 'sending' and list_contains($local, provider)
                returning delivery_id
                """,
                {"now": now, "local": list(LOCAL_PROVIDERS)},
            ).fetchall()
        ]
        doubt = [
            r[0]
            for r in con.execute(
                """
                update deliveries set status = 'in_doubt', updated_at = $now,
                    last_error = 'in doubt: the run that handed it to ' || coalesce(provider, '?')
                        || ' at ' || strftime(updated_at, '%Y-%m-%d %H:%M:%S')
                        || ' UTC stopped before recording the answer; check the provider, then relance resolve'
                where status = 'sending'
                returning delivery_id
                """,
                {"now": now},
            ).fetchall()
        ]
        for ids, status, detail in (
            (reset, "planned", "outbox rendering interrupted; will render again"),
            (doubt, "in_doubt", "found in sending: the previous run stopped between the provider call and its record"),
        ):
            if ids:
                con.execute(
                    """
                    insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
                    select delivery_id, $now, $status, 'sending', channel, provider, 'dispatch', $detail
                    from deliveries where delivery_id in (select unnest($ids::varchar[]))
                    """,
                    {"now": now, "status": status, "detail": detail, "ids": ids},
                )
    return {"in_doubt_new": doubt, "local_reset": reset}


def in_doubt(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select delivery_id from deliveries where status = 'in_doubt' order by delivery_id"
        ).fetchall()
    ]


def claim(con, ids: Sequence[str], provider: str, now: datetime) -> list[str]:
    """planned → sending, committed before any provider call. Returns the ids actually claimed."""
    if not ids:
        return []
    with warehouse.transaction(con):
        claimed = [
            r[0]
            for r in con.execute(
                """
                update deliveries set status = 'sending', attempts = attempts + 1, provider = $provider,
                    updated_at = $now, last_error = null
                where delivery_id in (select unnest($ids::varchar[])) and status = 'planned'
                returning delivery_id
                """,
                {"ids": list(ids), "provider": provider, "now": now},
            ).fetchall()
        ]
        if claimed:
            con.execute(
                """
                insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
                select delivery_id, $now, 'sending', 'planned', channel, provider, 'dispatch', 'attempt ' || attempts
                from deliveries where delivery_id in (select unnest($ids::varchar[]))
                """,
                {"now": now, "ids": claimed},
            )
    order = {d: i for i, d in enumerate(ids)}
    return sorted(claimed, key=order.__getitem__)


_RESULT_SCHEMA = {
    "delivery_id": pa.string(),
    "status": pa.string(),
    "provider": pa.string(),
    "provider_message_id": pa.string(),
    "error": pa.string(),
    "artifact_path": pa.string(),
    "sent_at": pa.timestamp("us"),
}


def record(con, results: Sequence[Result], now: datetime) -> None:
    """sending → the provider's outcome, in one transaction with its journal rows."""
    rows = [
        {
            "delivery_id": r.delivery_id,
            "status": r.status,
            "provider": r.provider,
            "provider_message_id": r.provider_message_id,
            "error": (r.error or None) and r.error[:2000],
            "artifact_path": r.artifact_path,
            "sent_at": naive_utc(r.sent_at) if r.sent_at else (now if r.status == "sent" else None),
        }
        for r in results
        if r.status != "deferred"
    ]
    if not rows:
        return
    _register(con, "dispatch_results", _RESULT_SCHEMA, rows)
    try:
        with warehouse.transaction(con):
            con.execute(
                """
                update deliveries set
                    status = r.status,
                    provider = r.provider,
                    provider_message_id = coalesce(r.provider_message_id, deliveries.provider_message_id),
                    last_error = r.error,
                    artifact_path = coalesce(r.artifact_path, deliveries.artifact_path),
                    sent_at = case when r.status = 'sent' then r.sent_at else deliveries.sent_at end,
                    updated_at = $now
                from dispatch_results r
                where deliveries.delivery_id = r.delivery_id and deliveries.status = 'sending'
                """,
                {"now": now},
            )
            con.execute(
                """
                insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail,
                                             run_id)
                select r.delivery_id, $now, r.status, 'sending', d.channel, r.provider, 'dispatch',
                       coalesce(r.error, case when r.provider_message_id is not null then 'message id ' || r.provider_message_id end),
                       $run_id
                from dispatch_results r join deliveries d using (delivery_id)
                """,
                {"now": now, "run_id": current_run_id()},  # the audited run that sent (tasks/audit.py)
            )
    finally:
        con.unregister("dispatch_results")


def run_hooks(channel: str, results: list[Result]) -> None:
    for hook in list(AFTER_PROVIDER_HOOKS):
        hook(channel, results)


def resolve(
    db: str,
    delivery_ids: Sequence[str],
    sent: bool,
    by: str,
    reason: str | None = None,
    provider_message_id: str | None = None,
    now: datetime | None = None,
) -> dict:
    """A person settles deliveries left `in_doubt` (or `failed`, to try again).

    sent=True: the provider did accept it → `sent` (sent_at = when it was handed over).
    sent=False: it did not go → `planned`, so the next run sends it.
    One audited run (kind resolve, actor `by`, tasks/audit.py): its events name it.
    """
    from relance.core.dates import today
    from tasks import audit

    if not by:
        raise UserError("resolve: say who decides (--by NAME)")
    ids = list(dict.fromkeys(delivery_ids))
    if not ids:
        raise UserError("resolve: name at least one delivery (--delivery ID)")
    now = naive_utc(now)
    with warehouse.open_db(db) as con:
        ensure_tables(con)
        found = dict(
            con.execute(
                "select delivery_id, status from deliveries where delivery_id in (select unnest($ids::varchar[]))",
                {"ids": ids},
            ).fetchall()
        )
        unknown = [i for i in ids if i not in found]
        allowed = ("in_doubt", "sending", "failed") if not sent else ("in_doubt", "sending")
        wrong = {i: s for i, s in found.items() if s not in allowed}
        if unknown or wrong:
            problems = [f"{i}: no such delivery" for i in unknown]
            problems += [f"{i}: is {s}, not {' or '.join(allowed)}" for i, s in wrong.items()]
            raise UserError("resolve: nothing changed —\n  " + "\n  ".join(problems))
        detail = f"resolved by {by}: {'sent' if sent else 'not sent'}" + (f" — {reason}" if reason else "")
        with audit.audited(db, "resolve", today(), con=con, actor=by) as run, warehouse.transaction(con):
            run.step("resolve", {"sent" if sent else "not_sent": len(ids)})
            for i in ids:
                previous = found[i]
                if sent:
                    con.execute(
                        """
                        update deliveries set status = 'sent', sent_at = coalesce(sent_at, updated_at),
                            provider_message_id = coalesce($mid, provider_message_id),
                            last_error = $detail, updated_at = $now
                        where delivery_id = $id
                        """,
                        {"mid": provider_message_id, "detail": detail, "now": now, "id": i},
                    )
                else:
                    con.execute(
                        "update deliveries set status = 'planned', last_error = $detail, updated_at = $now where delivery_id = $id",
                        {"detail": detail, "now": now, "id": i},
                    )
                con.execute(
                    """
                    insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor,
                                                 detail, run_id)
                    select delivery_id, $now, status, $previous, channel, provider, $actor, $detail, $run_id
                    from deliveries where delivery_id = $id
                    """,
                    {
                        "now": now,
                        "previous": previous,
                        "actor": f"resolve:{by}",
                        "detail": detail,
                        "id": i,
                        "run_id": run.run_id,
                    },
                )
            if table_exists(con, "late_charge_statements"):  # a statement's status follows its deliveries
                from tasks.late_charges import refresh_statuses

                refresh_statuses(con)
    return {"resolved": ids, "status": "sent" if sent else "planned", "by": by}


# -- file names -----------------------------------------------------------------------------------
# Every file the outbox holds is named after an id (a delivery, a unit, a collector's name). Ids are
# free text from the ERP: `C/1`, `C_1` and `.C_1` are three debtors. A name is a readable slug plus
# the first 8 hex digits of the sha256 of the FULL id, so two ids never share a file even when their
# slugs are equal (or differ only by case, on a case-insensitive filesystem). The slug keeps letters
# of every alphabet (NFC: "Élodie Caron" → `Élodie_Caron`), turns anything else (`/`, `\`, control
# characters, spaces …) into `_`, never starts with a dot, is never a Windows reserved name and is
# capped in UTF-8 bytes (file names are limited to 255 bytes).

_SLUG_UNSAFE = re.compile(r"[^\w.-]+")  # \w: letters and digits of any script, and _
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
SLUG_BYTES = 80


def slug(text: str, limit: int = SLUG_BYTES) -> str:
    """A readable, filesystem-safe rendering of text (not unique: see file_stem)."""
    cleaned = _SLUG_UNSAFE.sub("_", unicodedata.normalize("NFC", str(text)))
    cleaned = re.sub(r"_{2,}", "_", cleaned).strip("._-")
    cleaned = cleaned.encode("utf-8")[:limit].decode("utf-8", "ignore").rstrip("._-")
    if not cleaned:
        return "_"
    if cleaned.split(".")[0].lower() in _RESERVED:
        cleaned = "_" + cleaned
    return cleaned


def short_hash(text: str) -> str:
    """The first 8 hex digits of the sha256 of text, exactly as given (UTF-8)."""
    return hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def file_stem(text: str, limit: int = SLUG_BYTES) -> str:
    """The file name (without suffix) of an id: `slug-hash8`, distinct for distinct ids."""
    return f"{slug(text, limit)}-{short_hash(text)}"


def unit_stem(customer_id: str, currency: str) -> str:
    """The name of a unit's folder (customer, currency): `slug-CUR-hash8` of the pair."""
    return f"{slug(customer_id)}-{slug(currency, 8)}-{short_hash(json.dumps([str(customer_id), str(currency)]))}"


def safe_name(text: str, limit: int = SLUG_BYTES) -> str:
    """Kept for callers of the old helper: now the collision-free file_stem."""
    return file_stem(text, limit)


def check_artifacts(con, wanted: dict[str, str]) -> list[tuple[str, str]]:
    """Deliveries that may not write the file planned for them: (delivery_id, why).

    The file of a delivery is its own (re-running it rewrites it); a path already recorded as the
    artifact of ANOTHER delivery, or planned twice in one batch, is never written over."""
    failures: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for delivery_id, path in wanted.items():
        other = seen.get(path)
        if other is not None:
            failures.append(
                (delivery_id, f"file {Path(path).name} is already the file of delivery {other}; not written over")
            )
        else:
            seen[path] = delivery_id
    taken = (
        con.execute(
            """
        select w.delivery_id, any_value(d.delivery_id)
        from (select unnest($ids::varchar[]) as delivery_id, unnest($paths::varchar[]) as path) w
        join deliveries d on d.artifact_path = w.path and d.delivery_id <> w.delivery_id
        group by w.delivery_id
        """,
            {"ids": list(seen.values()), "paths": list(seen.keys())},
        ).fetchall()
        if seen
        else []
    )
    for delivery_id, other in taken:
        failures.append(
            (delivery_id, f"file {Path(wanted[delivery_id]).name} belongs to delivery {other}; not written over")
        )
    return failures


def fresh_path(path: Path) -> Path:
    """path, or path-2, path-3 … when a file of that name exists (a second run on the same date)."""
    if not path.exists():
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1
