"""The report's figures: read from the DuckDB file (read-only) into `ReportData` — plain values,
Decimal money and dates — by the queries of sql/reports/ and a few small ones here; and the next
step relance will take for a debtor, in words. A table a later step fills (the ladder, the
metrics) may be empty or missing: what it would give stays empty."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from relance.core.errors import UserError
from relance.core.paths import SQL_DIR
from relance.core.policy import Policy
from tasks import warehouse
from tasks.report.format import Fmt

ZERO = Decimal("0")


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _report_sql(name: str) -> str:
    return (SQL_DIR / "reports" / f"{name}.sql").read_text(encoding="utf-8")


def _query(con, name: str, params: dict) -> list[dict]:
    sql = _report_sql(name)
    cur = con.execute(sql, warehouse.bind_params(sql, params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


#: Units of the credit watch per currency in the workbook's sheet "Credit watch" (largest overdue
#: first); the whole list is always in the CSV beside the report (credit_watch_csv_name): a sheet of
#: tens of thousands of rows cost seconds of every big night and served no one better than the CSV.
WORKBOOK_WATCHED = 1000


def credit_watch_csv_name(as_of: date) -> str:
    """The file, beside the report, holding the whole credit watch of as_of (tasks/report/main.py)."""
    return f"relance-report-{as_of.isoformat()}-credit-watch.csv"


def watch_by_currency(watched: list[dict]) -> dict[str, list[dict]]:
    """The credit watch rows per currency, in their order (largest overdue first)."""
    out: dict[str, list[dict]] = {}
    for r in watched:
        out.setdefault(r["currency"], []).append(r)
    return out


@dataclass
class ReportData:
    as_of: date
    db: str
    language: str
    buckets: list[str]
    currencies: list[str] = field(default_factory=list)
    has_metrics: bool = False
    has_ladder: bool = False
    metrics: dict = field(default_factory=dict)  # (currency, metric, dimension, value) -> Decimal
    history: dict = field(default_factory=dict)  # (currency, metric, dimension, value) -> [(date, Decimal)]
    aged: list[dict] = field(default_factory=list)  # aged_balance rows of as_of, by customer
    debtors: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)  # units per stage
    held_units: dict = field(default_factory=dict)  # currency -> count
    will_step: dict = field(default_factory=dict)  # currency -> {stage: n}
    planned: int = 0
    actions_today: list[dict] = field(default_factory=list)
    deliveries_today: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    first_action: dict = field(default_factory=dict)  # currency -> its first action dated in (D-120, D-30]
    freshness: dict | None = None  # the freshness guard's last verdict for as_of (tasks/freshness.py)
    risk_classes: list[dict] = field(default_factory=list)  # debtor_profile of as_of per currency and class
    movers: list[dict] = field(default_factory=list)  # units whose class changed since the previous date
    watched: list[dict] = field(default_factory=list)  # credit_watch of as_of, with the customers' names
    unit_profiles: dict = field(default_factory=dict)  # (customer_id, currency) -> debtor_profile of as_of
    forecast: list[dict] = field(default_factory=list)  # cash_forecast of as_of
    accuracy: list[dict] = field(default_factory=list)  # earlier forecasts whose window has passed
    #: the live statements of late-payment charges made in as_of's month, per currency (tasks/late_charges.py)
    #: (statuses: tasks/late_charges.py refresh_statuses)
    late_charges: dict = field(
        default_factory=dict
    )  # currency -> {statements, total, pending, sent, partly_sent, failed}


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
                order by currency, current_stage
                """,
                params,
            ).fetchall()
        ]
        data.held_units = dict(
            con.execute(
                "select currency, count(*) from unit_stage where as_of = $as_of and held group by currency", params
            ).fetchall()
        )
        ranks = {s.code: i for i, s in enumerate(pol.stages, start=1)}
        for cur, current, target, held, ladder in con.execute(
            "select currency, current_stage, target_stage, held, ladder from unit_stage "
            "where as_of = $as_of and target_stage is not null",
            params,
        ).fetchall():
            if held or ranks.get(target, 0) <= ranks.get(current, 0):
                continue
            nxt = _next_stage(pol, current, overdue=True, ladder=ladder)
            if nxt is not None:
                data.will_step.setdefault(cur, {}).setdefault(nxt.code, 0)
                data.will_step[cur][nxt.code] += 1
        data.has_ladder = warehouse.scalar(con, "select count(*) from unit_stage where as_of = $as_of", params) > 0
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
        data.first_action = dict(
            con.execute(
                """select currency, min(as_of) from dunning_actions
               where as_of > cast($as_of as date) - 120 and as_of <= cast($as_of as date) - 30 group by currency""",
                params,
            ).fetchall()
        )
        data.planned = warehouse.scalar(
            con,
            """select count(*) from deliveries join dunning_actions using (action_id)
               where deliveries.status = 'planned' and dunning_actions.as_of <= $as_of""",
            params,
        )
        if "stg_customers" in tables:
            data.attention = _query(con, "attention", params)
    if "late_charge_statements" in tables:
        data.late_charges = {
            cur: {
                "statements": n,
                "total": total,
                "pending": pending,
                "sent": sent,
                "partly_sent": partly,
                "failed": failed,
            }
            for cur, n, total, pending, sent, partly, failed in con.execute(
                """select currency, count(*), sum(charges_total), count(*) filter (where status = 'pending_approval'),
                          count(*) filter (where status = 'sent'), count(*) filter (where status = 'partly_sent'),
                          count(*) filter (where status = 'failed')
                   from late_charge_statements
                   where mode = 'live' and status <> 'rejected'
                     and as_of between date_trunc('month', cast($as_of as date)) and $as_of
                   group by currency""",
                params,
            ).fetchall()
        }
    if "rejected_rows" in tables:
        data.rejected = _query(con, "rejected_rows", params)
    if {"debtor_profile", "credit_watch"} <= tables:
        data.risk_classes = _query(con, "risk_classes", params)
        if "stg_customers" in tables:
            data.movers = _query(con, "class_movers", params)
            data.watched = _query(con, "watched_units", params)
        data.unit_profiles = {(r["customer_id"], r["currency"]): r for r in _query(con, "unit_profiles", params)}
    if "cash_forecast" in tables:
        data.forecast = [
            dict(zip(("currency", "horizon_days", "expected_amount", "invoice_count"), r))
            for r in con.execute(
                """select currency, horizon_days, expected_amount, invoice_count from cash_forecast
                   where as_of = $as_of order by currency, horizon_days""",
                params,
            ).fetchall()
        ]
        if "stg_payments" in tables:
            data.accuracy = _query(con, "forecast_accuracy", params)
    currencies = (
        {k[0] for k in data.metrics}
        | {r["currency"] for r in data.aged}
        | {r["currency"] for r in data.debtors}
        | {r["currency"] for r in data.risk_classes}
    )
    open_by_cur = {c: data.metrics.get((c, "open_ar", "all", "all"), ZERO) for c in currencies}
    data.currencies = sorted(currencies, key=lambda c: (-open_by_cur[c], c))
    return data


# ------------------------------------------------------------------------------------ profiles, forecast
#: The risk classes in the order the report lists them (docs/metrics.md "Debtor profile").
RISK_CLASSES = ("A", "B", "C", "D", "new")


def forecast_accuracy(data: ReportData, currency: str) -> list[dict]:
    """For each horizon, the latest earlier forecast of `currency` whose window has passed by as_of:
    {horizon_days, forecast_date, expected_amount, collected_amount, difference (collected −
    expected), ratio (collected / expected in percent, 2 decimals half-up; None when nothing was
    expected)} (docs/metrics.md "Expected collections")."""
    latest: dict[int, dict] = {}
    for r in data.accuracy:
        if r["currency"] == currency and (
            r["horizon_days"] not in latest or r["forecast_date"] > latest[r["horizon_days"]]["forecast_date"]
        ):
            latest[r["horizon_days"]] = r
    return [accuracy_row(latest[h]) for h in sorted(latest)]


def accuracy_row(r: dict) -> dict:
    """One passed forecast with its difference and ratio (Decimal, exact)."""
    expected, collected = r["expected_amount"], r["collected_amount"]
    ratio = (collected * 100 / expected).quantize(Decimal("0.01"), ROUND_HALF_UP) if expected else None
    return {**r, "difference": collected - expected, "ratio": ratio}


# ------------------------------------------------------------------------------------ next step
def _next_stage(pol: Policy, current: str | None, overdue: bool, ladder: str | None = None, fmt: Fmt | None = None):
    """The next stage of the unit's ladder (None: standard) above its current one (ranks are the
    catalogue's, whichever ladder the current stage was taken in)."""
    codes = [s.code for s in pol.stages]
    done = codes.index(current) + 1 if current in codes else 0
    name = ladder if ladder in pol.ladder_names else "standard"
    for rank, stage in fmt.ladder_stages(pol, name) if fmt is not None else pol.ladder_stages(name):
        if rank <= done:
            continue
        if overdue and stage.offset_days < 0 and current is None:
            continue  # preventive is passed over when the driving invoice is already overdue
        return stage
    return None


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
    nxt = _next_stage(pol, row.get("current_stage"), overdue, row.get("ladder"), fmt)
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
    notice = pol.notice_stage
    ranks = [s.code for s in pol.stages]
    if notice is not None and ranks.index(nxt.code) > ranks.index(notice.code):  # after the legal notice: its deadline
        if row.get("notice_deadline"):
            earliest = max(earliest, row["notice_deadline"] + timedelta(days=1))
        elif row.get("notice_sent_on"):  # no receipt known yet
            earliest = max(earliest, row["notice_sent_on"] + timedelta(days=pol.receipt_wait_days))
    return L["next_stage"].format(stage=fmt.stage(nxt.code), date=fmt.date(earliest))


def _open_read_only(db: str):
    if not Path(db).exists():
        raise UserError(f"database {db} does not exist; run `relance run --db {db}` first")
    return warehouse.open_db(db, read_only=True)


# ------------------------------------------------------------------------------------ what debtors said
#: The outcome metrics the report shows (issue 14 §4, docs/metrics.md "What debtors said" and "Cash
#: collected by the last step before it"), in the order they are read: (metric, dimension).
OUTCOME_METRICS = (
    ("promise_kept_rate_30d", "all"),
    ("promise_kept_amount_rate_30d", "all"),
    ("promises_broken_30d", "all"),
    ("promise_kept_rate_30d", "collector"),
    ("promises_broken_30d", "collector"),
    ("disputes_open", "all"),
    ("disputes_open", "reason"),
    ("disputes_open", "age_bucket"),
    ("plans", "status"),
    ("outcomes_30d", "kind"),
    ("outcomes_30d", "collector"),
    ("outcomes_30d", "stage"),
    ("outcomes_30d", "collector_stage"),
    ("cash_attributed_30d", "stage"),
    ("cash_attributed_30d", "channel"),
    ("cash_attributed_30d", "collector"),
)


def outcome_metrics(data: ReportData, currency: str) -> list[tuple[str, str, str, Decimal]]:
    """The outcome metrics of `currency` on as_of: (metric, dimension, dimension_value, value), in
    OUTCOME_METRICS' order, the values of a dimension sorted ('none' last)."""
    out = []
    for metric, dimension in OUTCOME_METRICS:
        values = sorted(
            ((k[3], v) for k, v in data.metrics.items() if k[0] == currency and k[1] == metric and k[2] == dimension),
            key=lambda kv: (kv[0] == "none" or kv[0].endswith(":none"), kv[0].casefold()),
        )
        out += [(metric, dimension, code, value) for code, value in values]
    return out
