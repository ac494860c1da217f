"""The aging and ladder decision rules of the contract (§2, §3), written plainly in pandas, as a
data team would without relance: the yardstick of the benchmark's headline ratio.

For one date D, given the ladder's state before D (the episodes and actions dated before D), it
computes the open amounts (direct settlement, credit pool oldest first), days past due, holds,
each unit's driving invoice, dunnable amount and target stage, and which units take a step on D
(the next stage above the last, passing over `preventive` when already overdue; min gap;
business days; holds; min_amount; pending approval). Amounts are integer cents (no floats).

`compare(db, D)` runs it on a database where the nightly run of D has been done and checks that
it gives the same actions as the SQL: the same set of (customer_id, currency, stage) dated D.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd

UNIT = ["customer_id", "currency"]


def _cents(s: pd.Series) -> pd.Series:
    return (
        (s.astype("float64") * 100).round().astype("int64")
        if s.dtype == object
        else (s.astype("float64") * 100).round().astype("int64")
    )


def load(con, as_of: date) -> dict[str, pd.DataFrame]:
    """The validated inputs (stg_*), the ladder's state tables, as DataFrames (amounts in cents)."""
    q = lambda sql: con.execute(sql).df()  # noqa: E731
    inv = q(
        "select invoice_id, customer_id, kind, issue_date, due_date, cast(amount * 100 as bigint) as amount, currency from stg_invoices"
    )
    pay = q(
        "select payment_id, customer_id, invoice_id, paid_date, cast(amount * 100 as bigint) as amount, currency from stg_payments"
    )
    holds = q("select hold_id, customer_id, invoice_id, kind, start_date, end_date from stg_holds")
    cust = q("select customer_id, country, dunning_block from stg_customers")
    episodes = q("select episode_id, customer_id, currency, episode_no, opened_on, closed_on from dunning_episodes")
    actions = q("select action_id, as_of, customer_id, currency, episode_id, stage, status from dunning_actions")
    for df, cols in (
        (inv, ["issue_date", "due_date"]),
        (pay, ["paid_date"]),
        (holds, ["start_date", "end_date"]),
        (episodes, ["opened_on", "closed_on"]),
        (actions, ["as_of"]),
    ):
        for c in cols:
            df[c] = pd.to_datetime(df[c])
    return {
        "invoices": inv,
        "payments": pay,
        "holds": holds,
        "customers": cust,
        "episodes": episodes,
        "actions": actions,
    }


def business_days(countries, day: date) -> dict[str, bool]:
    import holidays

    out = {}
    for c in countries:
        try:
            hol = holidays.country_holidays(c, years=day.year)
        except (NotImplementedError, KeyError):
            hol = {}
        out[c] = day.isoweekday() < 6 and day not in hol
    return out


def age(data: dict, as_of: date) -> pd.DataFrame:
    """Open invoices at as_of with open_amount (cents), days_past_due, invoice/customer holds."""
    D = pd.Timestamp(as_of)
    inv = data["invoices"][data["invoices"]["issue_date"] <= D]
    pay = data["payments"][data["payments"]["paid_date"] <= D]

    invoices = inv[inv["kind"] == "invoice"]
    direct = pay[pay["invoice_id"].notna()].groupby("invoice_id")["amount"].sum().rename("paid")
    s = invoices.merge(direct, how="left", left_on="invoice_id", right_index=True)
    s["paid"] = s["paid"].fillna(0).astype("int64")
    applied = np.minimum(s["amount"], s["paid"])
    s["remaining"] = s["amount"] - applied
    s["excess"] = s["paid"] - applied

    known = set(inv["invoice_id"])
    on_account = pay[pay["invoice_id"].isna() | ~pay["invoice_id"].isin(known)]
    credits = pd.concat(
        [
            inv.loc[inv["kind"] == "credit_note", UNIT + ["amount"]],
            on_account[UNIT + ["amount"]],
            s.loc[s["excess"] > 0, UNIT + ["excess"]].rename(columns={"excess": "amount"}),
        ]
    )
    pool = credits.groupby(UNIT)["amount"].sum().rename("pool")

    r = s[s["remaining"] > 0].sort_values(UNIT + ["due_date", "issue_date", "invoice_id"])
    r = r.merge(pool, how="left", left_on=UNIT, right_index=True)
    r["pool"] = r["pool"].fillna(0).astype("int64")
    r["before"] = r.groupby(UNIT)["remaining"].cumsum() - r["remaining"]
    r["open_amount"] = r["remaining"] - np.minimum(r["remaining"], np.maximum(0, r["pool"] - r["before"]))
    r = r[r["open_amount"] > 0].copy()
    r["days_past_due"] = (D - r["due_date"]).dt.days

    h = data["holds"]
    active = h[(h["start_date"] <= D) & (h["end_date"].isna() | (h["end_date"] >= D))]
    r["invoice_held"] = r["invoice_id"].isin(set(active["invoice_id"].dropna()))
    return r


def decide(
    data: dict,
    aged: pd.DataFrame,
    as_of: date,
    stages: list[dict],
    min_gap_days: int = 3,
    business_days_only: bool = True,
) -> pd.DataFrame:
    """The units taking a step on as_of: customer_id, currency, stage."""
    D = pd.Timestamp(as_of)
    first_offset = stages[0]["offset_days"]
    offsets = np.array([s["offset_days"] for s in stages])
    mins = np.array([s["min_amount"] for s in stages])
    names = [s["stage"] for s in stages]

    a = aged.copy()
    a["dunnable"] = np.where(~a["invoice_held"] & (a["days_past_due"] >= first_offset), a["open_amount"], 0)
    unheld = a[~a["invoice_held"]]
    units = a.groupby(UNIT).agg(dunnable_amount=("dunnable", "sum")).reset_index()
    driving = unheld.groupby(UNIT)["days_past_due"].max().rename("driving_dpd")
    units = units.merge(driving, how="left", left_on=UNIT, right_index=True)

    # target: highest stage with offset <= driving dpd and min_amount <= dunnable
    def target(row_dpd, row_amt):
        ok = (offsets <= row_dpd) & (mins <= row_amt)
        return int(np.nonzero(ok)[0].max()) + 1 if ok.any() else 0

    dpd = units["driving_dpd"].to_numpy()
    amt = units["dunnable_amount"].to_numpy()
    units["target_rank"] = [target(d, m) if not np.isnan(d) else 0 for d, m in zip(dpd, amt)]

    # state before D: open episode, its last action
    ep = data["episodes"][data["episodes"]["opened_on"] < D]
    latest = ep.sort_values("episode_no").groupby(UNIT).tail(1)
    open_ep = latest[latest["closed_on"].isna() | (latest["closed_on"] >= D)][UNIT + ["episode_id"]]
    rank = {n: i + 1 for i, n in enumerate(names)}
    act = data["actions"][
        (data["actions"]["as_of"] < D) & data["actions"]["episode_id"].isin(set(open_ep["episode_id"]))
    ].copy()
    act["rank"] = act["stage"].map(rank).fillna(0).astype(int)
    act = act.sort_values(["episode_id", "as_of", "rank"])
    last = (
        act.groupby("episode_id")
        .agg(last_rank=("rank", "max"), last_on=("as_of", "max"), last_status=("status", "last"))
        .reset_index()
    )
    state = open_ep.merge(last, how="left", on="episode_id")

    u = units.merge(state, how="outer", on=UNIT)
    u["target_rank"] = u["target_rank"].fillna(0).astype(int)
    u["dunnable_amount"] = u["dunnable_amount"].fillna(0)
    u["last_rank"] = u["last_rank"].fillna(0).astype(int)

    cust = data["customers"].set_index("customer_id")
    h = data["holds"]
    active = h[(h["start_date"] <= D) & (h["end_date"].isna() | (h["end_date"] >= D)) & h["invoice_id"].isna()]
    held_customers = set(active["customer_id"]) | set(cust.index[cust["dunning_block"].fillna(False)])
    u["held"] = u["customer_id"].isin(held_customers)
    u["country"] = u["customer_id"].map(cust["country"])
    if business_days_only:
        cal = business_days(u["country"].dropna().unique(), as_of)
        u["business_day"] = u["country"].map(cal).fillna(as_of.isoweekday() < 6).astype(bool)
    else:
        u["business_day"] = True

    has_ep = u["episode_id"].notna()
    opens = ~u["held"] & ~has_ep & (u["target_rank"] > 0)
    closes = ~u["held"] & has_ep & (u["dunnable_amount"] == 0)
    episode = (has_ep & ~closes) | opens
    last_rank = np.where(opens, 0, u["last_rank"])
    overdue = u["driving_dpd"].fillna(0) > 0

    def next_rank(lr, od):
        for i in range(lr, len(stages)):
            if od and offsets[i] < 0:
                continue
            return i + 1
        return 99

    nxt = np.array([next_rank(lr, od) for lr, od in zip(last_rank, overdue)])
    gap_ok = opens | u["last_on"].isna() | ((D - u["last_on"]).dt.days >= min_gap_days)
    awaiting = (~opens) & (u["last_status"] == "pending_approval")
    acts = (
        episode
        & ~u["held"]
        & (u["target_rank"] > last_rank)
        & (nxt <= u["target_rank"])
        & ~awaiting
        & gap_ok
        & u["business_day"]
    )
    out = u.loc[acts, UNIT].copy()
    out["stage"] = [names[n - 1] for n in nxt[acts.to_numpy()]]
    return out


def compare(db: str, as_of: date, policy: str | None = None) -> dict:
    """Run the baseline on db at as_of (after the nightly run of as_of) and compare with the SQL."""
    import duckdb

    from relance.core.policy import load_policy

    pol = load_policy(policy)
    stages = [
        {"stage": s.code, "offset_days": s.offset_days, "min_amount": int(round(s.min_amount * 100))}
        for s in pol.stages
    ]
    with duckdb.connect(db, read_only=True) as con:
        t = time.perf_counter()
        data = load(con, as_of)
        load_s = time.perf_counter() - t
        sql = con.execute(
            "select customer_id, currency, stage from dunning_actions where as_of = ? and mode = 'live'", [as_of]
        ).fetchall()
    # the state before D: what the nightly of D wrote is not part of it
    data["actions"] = data["actions"][data["actions"]["as_of"] < pd.Timestamp(as_of)]
    t = time.perf_counter()
    aged = age(data, as_of)
    t1 = time.perf_counter()
    acts = decide(data, aged, as_of, stages, pol.min_gap_days, pol.business_days_only)
    t2 = time.perf_counter()
    mine = set(map(tuple, acts[UNIT + ["stage"]].itertuples(index=False, name=None)))
    theirs = set(sql)
    return {
        "ladder_pandas_s": round(t2 - t, 3),
        "pandas_age_s": round(t1 - t, 3),
        "pandas_decide_s": round(t2 - t1, 3),
        "pandas_load_s": round(load_s, 3),
        "pandas_actions": len(mine),
        "sql_actions": len(theirs),
        "same_actions": mine == theirs,
        "only_pandas": sorted(mine - theirs)[:10],
        "only_sql": sorted(theirs - mine)[:10],
    }
