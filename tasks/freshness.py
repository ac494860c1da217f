"""freshness: is the source current enough to dun on? (issue 15 §2; docs/policy.md "Freshness guard")

Checked by the nightly run right after the ingest, before anything is planned or sent:

* the newest payment (`paid_date`) and the newest invoice (`issue_date`) of the source as loaded,
  against as_of: more than `freshness.max_payment_gap_business_days` (resp. `…invoice…`) business
  days of `freshness.country` between them, while the previous completed run saw that entity
  within the limit, and the source looks stale — it stopped updating. A source that was already
  behind at the previous run lags by design (a weekly export, a fixed extract): its gap is reported
  (`lagging`, a warning), not blocking;
* for PostgreSQL and HTTP sources, the rows of customers, invoices and payments against the
  previous run's fingerprint (tasks/audit.py `previous_fingerprint`): a drop of more than
  `freshness.max_row_drop_percent` percent, and the source looks stale.

A database with no previous run that read the source (a first run) is never blocked: the gaps are
computed and shown, not enforced (a new installation would otherwise need --allow-stale on its
first night for a source that is simply quiet). Replays and backfills are not checked: they replay
the past on purpose.

The verdict is one row of `source_freshness` per run (the report's banner reads it) and the audit
row's `freshness` column: `fresh`, `stale` (the run plans no contact and fails), `stale_allowed`
(`--allow-stale`: it goes on), `first_run`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from relance.core.errors import UserError
from relance.core.policy import Policy, load_policy
from tasks import warehouse
from tasks.calendar import public_holidays
from tasks.step import get_logger, step

#: The entities whose rows must not drop (holds are lifted and may go).
COUNTED = ("customers", "invoices", "payments")
#: The source kinds whose row counts are compared with the previous run (a files source is a
#: folder an operator may replace on purpose; its dates are still checked).
COUNTED_KINDS = ("postgres", "http")


class SourceStale(UserError):
    """The source looks stale: the run planned no contact and sent nothing."""


def business_days_after(newest: date, as_of: date, country: str) -> int:
    """The business days d with newest < d <= as_of (weekends and the country's public holidays
    off): 0 when the newest date is as_of or later; Friday → Monday is 1."""
    if newest >= as_of:
        return 0
    holidays = public_holidays(country, newest + timedelta(days=1), as_of) or {}
    n, d = 0, newest + timedelta(days=1)
    while d <= as_of:
        if d.isoweekday() < 6 and d not in holidays:
            n += 1
        d += timedelta(days=1)
    return n


def _iso(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def assess(
    as_of: date, current: dict | None, previous: dict | None, pol: Policy, kind: str, previous_as_of: date | None = None
) -> dict:
    """The verdict for a source fingerprint (tasks/audit.py source_fingerprint) against as_of and the
    previous run's: {"verdict", "stale", "first_run", "reasons": [one line each], "checks": {…}}.
    `stale` says whether the source looks stale; `verdict` is fresh / stale / first_run (a first run
    is never stale: its reasons are shown, not enforced)."""
    f = pol.freshness
    reasons: list[str] = []
    lagging: list[str] = []
    checks: dict = {}
    current = current or {}
    for entity, column, limit, key, noun in (
        ("payments", "max_paid_date", f.max_payment_gap_business_days, "max_payment_gap_business_days", "payment"),
        ("invoices", "max_issue_date", f.max_invoice_gap_business_days, "max_invoice_gap_business_days", "invoice"),
    ):
        newest = _iso((current.get(entity) or {}).get(column))
        gap = business_days_after(newest, as_of, f.country) if newest else None
        checks[entity] = {"newest": newest.isoformat() if newest else None, "gap_business_days": gap, "limit": limit}
        if previous is not None:
            checks[entity]["previous_newest"] = (previous.get(entity) or {}).get(column)
        if newest is not None and limit is not None and gap > limit:
            unchanged = previous is not None and checks[entity].get("previous_newest") == newest.isoformat()
            before = _iso(checks[entity].get("previous_newest")) if previous is not None else None
            if before is not None and previous_as_of is not None:
                checks[entity]["previous_gap_business_days"] = business_days_after(before, previous_as_of, f.country)
                if checks[entity]["previous_gap_business_days"] > limit:
                    # Already behind at the previous completed run: the source lags by design (a
                    # weekly export, a fixed file) rather than stopped; reported, not blocking.
                    lagging.append(
                        f"newest {noun} {newest.isoformat()} is {gap} business days before "
                        f"{as_of.isoformat()} (already {checks[entity]['previous_gap_business_days']} "
                        f"at the previous run of {previous_as_of.isoformat()}) > freshness.{key} {limit}"
                    )
                    continue
            reasons.append(
                f"newest {noun} {newest.isoformat()} is {gap} business days before {as_of.isoformat()}"
                f"{' (unchanged since the previous run)' if unchanged else ''} > freshness.{key} {limit}"
            )
    if previous is not None and kind in COUNTED_KINDS and f.max_row_drop_percent is not None:
        for entity in COUNTED:
            before = (previous.get(entity) or {}).get("rows") or 0
            now = (current.get(entity) or {}).get("rows") or 0
            if before <= 0:
                continue
            drop = (Decimal(before - now) * 100 / Decimal(before)).quantize(Decimal("0.1"))
            checks.setdefault(entity, {})["rows"] = {"previous": before, "now": now, "drop_percent": str(drop)}
            if drop > f.max_row_drop_percent:
                reasons.append(
                    f"{entity}: {now} rows, {drop}% fewer than the previous run's {before} "
                    f"> freshness.max_row_drop_percent {f.max_row_drop_percent}"
                )
    first_run = previous is None
    stale = bool(reasons) and not first_run
    return {
        "verdict": "first_run" if first_run else "stale" if stale else "fresh",
        "stale": stale,
        "first_run": first_run,
        "reasons": reasons,
        "lagging": lagging,
        "checks": checks,
    }


def stale_message(result: dict) -> str:
    """The run's one-line failure for a stale source."""
    return (
        f"the source looks stale ({'; '.join(result['reasons'])}): no contact planned, nothing sent; "
        "check the source's export, or run again with --allow-stale (flow parameter allow_stale) "
        "to dun on it anyway"
    )


@step(name="check_freshness")
def check_freshness(
    db: str, as_of: date, source: str, policy: str | None = None, allow_stale: bool = False, run_id: str | None = None
) -> dict:
    """Judge the source just loaded (the stg_* tables) against as_of and the previous run's
    fingerprint; record the verdict in `source_freshness`; returns it (plus `allowed`: the run goes
    on though the source looks stale, on --allow-stale)."""
    from tasks.audit import previous_run, source_fingerprint
    from tasks.ingest import source_kind

    log = get_logger()
    pol = load_policy(policy)
    kind = source_kind(source)
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        previous = previous_run(con, as_of)
        result = assess(
            as_of, source_fingerprint(con), previous[1] if previous else None, pol, kind, previous and previous[0]
        )
        allowed = result["stale"] and allow_stale
        if allowed:
            result["verdict"] = "stale_allowed"
        result["allowed"] = allowed
        result["allow_stale"] = bool(allow_stale)
        con.execute(
            """
            insert or replace into source_freshness
                (run_id, as_of, checked_at, source_kind, verdict, stale, allow_stale, reasons, checks)
            values ($run_id, $as_of, $now, $kind, $verdict, $stale, $allow_stale, $reasons, $checks)
            """,
            {
                "run_id": run_id or f"unaudited/{as_of.isoformat()}",
                "as_of": as_of,
                "now": datetime.now(UTC).replace(tzinfo=None),
                "kind": kind,
                "verdict": result["verdict"],
                "stale": result["stale"],
                "allow_stale": bool(allow_stale),
                "reasons": json.dumps(result["reasons"]),
                "checks": json.dumps(result["checks"]),
            },
        )
    if result["stale"] and not allowed:
        log.error("freshness: %s", stale_message(result))
    elif result["stale"]:
        log.warning(
            "freshness: the source looks stale (%s); --allow-stale: the run goes on", "; ".join(result["reasons"])
        )
    elif result["reasons"]:
        # information, not a warning: a first night is never blocked (the report and source_freshness
        # keep the figures); a warning on stderr would read as a problem with the run
        log.info("freshness: first run on this database, not blocked: %s", "; ".join(result["reasons"]))
    elif result["lagging"]:
        log.info(
            "freshness: the source lags but did not stop since the previous run, not blocked: %s",
            "; ".join(result["lagging"]),
        )
    else:
        log.info("freshness: %s", result["verdict"])
    return result


def latest_verdict(con, as_of: date) -> dict | None:
    """The last freshness verdict recorded for as_of (the report's banner), or None."""
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    if "source_freshness" not in have:
        return None
    row = con.execute(
        """
        select verdict, stale, allow_stale, reasons from source_freshness
        where as_of = $as_of order by checked_at desc limit 1
        """,
        {"as_of": as_of},
    ).fetchone()
    if row is None:
        return None
    return {"verdict": row[0], "stale": row[1], "allow_stale": row[2], "reasons": json.loads(row[3] or "[]")}
