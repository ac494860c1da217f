"""Properties of the ladder over random small histories (hypothesis).

Each example: 2–3 customers (France or Germany, b2b or b2c, some blocked, some missing contacts),
1–3 invoices each (due from 40 days before the window to 10 days into it, some in USD),
payments (whole, half, on account) and holds (customer- or invoice-level) falling in a 10-day
window that holds Good Friday (a German holiday) and Easter Monday 2026. The nightly job runs
on every day of the window, one connection per day (state only through the tables); then:

- stages never go down within an episode, and steps are at least min_gap_days apart;
- no action for a held unit (checked against the source, not against unit_stage) nor on a
  weekend or a public holiday of the customer's country (checked with the holidays package);
- a formal notice is never the first action of an episode;
- re-running any date changes nothing;
- a backfill over the window gives the same actions, deliveries and unit stages as the
  nightly runs, one by one (statuses aside: simulated instead of planned / pending_approval).
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import holidays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.backfill import backfill_run
from tests.ladder_helpers import (
    LADDER_TABLES,
    customer,
    days,
    hold,
    invoice,
    payment,
    query,
    run_days,
    table_rows,
    write_source,
)

START = date(2026, 3, 30)
WINDOW = days(START, START + timedelta(days=9))  # Mon 03-30 .. Wed 04-08
RANKS = {
    s: i
    for i, s in enumerate(
        ["preventive", "due", "call_1", "reminder_2", "call_2", "formal_notice", "amicable", "litigation"], start=1
    )
}


@st.composite
def histories(draw):
    customers, invoices, payments, holds = [], [], [], []
    for c in range(draw(st.integers(2, 3))):
        cid = f"C{c}"
        country = draw(st.sampled_from(["FR", "DE"]))
        customers.append(
            customer(
                cid,
                country=country,
                segment=draw(st.sampled_from(["b2b", "b2c"])),
                dunning_block=draw(st.sampled_from(["false"] * 9 + ["true"])),
                email="" if draw(st.booleans()) and draw(st.booleans()) else f"{cid.lower()}@example.com",
                phone="" if draw(st.booleans()) and draw(st.booleans()) else "+33612345678",
                **({"street": "", "city": "", "postal_code": ""} if draw(st.integers(0, 5)) == 0 else {}),
            )
        )
        for i in range(draw(st.integers(1, 3))):
            iid = f"{cid}-I{i}"
            due = START + timedelta(days=draw(st.integers(-40, 10)))
            amount = draw(st.sampled_from(["80.00", "300.00", "650.00"]))
            currency = draw(st.sampled_from(["EUR"] * 4 + ["USD"]))
            invoices.append(
                invoice(
                    iid,
                    cid,
                    due.isoformat(),
                    amount,
                    currency=currency,
                    issue=(min(due, START) - timedelta(days=30)).isoformat(),
                )
            )
            kind = draw(st.sampled_from(["none", "none", "none", "full", "half", "account"]))
            if kind != "none":
                paid = START + timedelta(days=draw(st.integers(0, 9)))
                value = amount if kind != "half" else f"{float(amount) / 2:.2f}"
                payments.append(
                    payment(
                        f"P-{iid}",
                        cid,
                        paid.isoformat(),
                        value,
                        currency=currency,
                        invoice_id=iid if kind != "account" else None,
                    )
                )
            if draw(st.integers(0, 4)) == 0:
                s = START + timedelta(days=draw(st.integers(-3, 9)))
                e = s + timedelta(days=draw(st.integers(0, 5)))
                holds.append(
                    hold(
                        f"H-{iid}",
                        cid,
                        s.isoformat(),
                        e.isoformat(),
                        invoice_id=iid,
                        kind=draw(st.sampled_from(["dispute", "promise"])),
                    )
                )
        if draw(st.integers(0, 3)) == 0:
            s = START + timedelta(days=draw(st.integers(-3, 9)))
            e = None if draw(st.booleans()) else (s + timedelta(days=draw(st.integers(0, 5)))).isoformat()
            holds.append(hold(f"H-{cid}", cid, s.isoformat(), e, kind="payment_plan"))
    return {"customers": customers, "invoices": invoices, "payments": payments, "holds": holds}


def _customer_held(h: dict, cid: str, day: date) -> bool:
    c = next(c for c in h["customers"] if c["customer_id"] == cid)
    if c["dunning_block"] == "true":
        return True
    return any(
        x["customer_id"] == cid
        and not x["invoice_id"]
        and date.fromisoformat(x["start_date"]) <= day
        and (not x["end_date"] or day <= date.fromisoformat(x["end_date"]))
        for x in h["holds"]
    )


def _business_day(country: str, day: date) -> bool:
    return day.isoweekday() < 6 and day not in holidays.country_holidays(country, years=day.year)


def _actions(db: str) -> list[tuple]:
    return query(
        db,
        """
        select as_of, customer_id, currency, episode_id, stage, amount_due, invoice_ids, driving_invoice_id,
               interest_amount, indemnity_amount, charges_total
        from dunning_actions order by action_id""",
    )


def _deliveries(db: str) -> list[tuple]:
    # planned / pending_approval (live) are `simulated` in a replay; undeliverable and skipped are facts
    return query(
        db,
        """
        select delivery_id, action_id, channel,
               case when status in ('planned', 'pending_approval') then 'simulated' else status end,
               fallback_from, last_error
        from deliveries order by delivery_id""",
    )


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories(), rerun_index=st.integers(0, len(WINDOW) - 1))
def test_ladder_properties(history, rerun_index):
    with tempfile.TemporaryDirectory(prefix="relance-prop-") as tmp:
        tmp = Path(tmp)
        src = write_source(tmp / "src", **history)
        db = str(tmp / "nightly.duckdb")
        # nightly runs approve their formal notices (--auto-approve), as a replay takes approvals as given
        run_days(src, db, WINDOW[:1], auto_approve=True)
        for day in WINDOW[1:]:
            run_days(None, db, [day], auto_approve=True)  # a fresh connection each night: state only through the tables

        rows = query(
            db,
            """
            select a.as_of, a.customer_id, a.episode_id, a.stage, c.country
            from dunning_actions a join stg_customers c using (customer_id)
            order by a.episode_id, a.as_of""",
        )
        by_episode: dict[str, list[tuple]] = {}
        for as_of, cid, episode, stage, country in rows:
            assert not _customer_held(history, cid, as_of), (cid, as_of, stage)
            assert _business_day(country, as_of), (cid, as_of, stage, country)
            by_episode.setdefault(episode, []).append((as_of, RANKS[stage]))
        for episode, seq in by_episode.items():
            assert seq[0][1] in (RANKS["preventive"], RANKS["due"]), (episode, seq)  # never a formal notice first
            for (d1, r1), (d2, r2) in zip(seq, seq[1:]):
                assert r2 > r1, (episode, seq)  # stages never go down (nor repeat)
                assert (d2 - d1).days >= 3, (episode, seq)
        assert query(db, "select count(*) from unit_stage where held and action_id is not null") == [(0,)]

        # re-running any date changes nothing
        before = {t: table_rows(db, t) for t in LADDER_TABLES}
        run_days(None, db, [WINDOW[rerun_index]], auto_approve=True)
        assert {t: table_rows(db, t) for t in LADDER_TABLES} == before

        # a backfill over the window equals the nightly runs
        replayed = str(tmp / "backfill.duckdb")
        backfill_run(WINDOW[0], WINDOW[-1], src, replayed)
        assert _actions(replayed) == _actions(db)
        assert _deliveries(replayed) == _deliveries(db)
        # the debtor profile columns come from the measure step, which run_days (age + ladder) does
        # not run, while a backfill measures every day: compare the ladder's columns
        ladder_columns = "* exclude (risk_score, risk_class, profile_as_of)"
        assert sorted(query(replayed, f"select {ladder_columns} from unit_stage"), key=repr) == sorted(
            query(db, f"select {ladder_columns} from unit_stage"), key=repr
        )
        assert table_rows(replayed, "dunning_episodes") == table_rows(db, "dunning_episodes")
        assert query(replayed, "select distinct status from dunning_actions where status <> 'simulated'") == []
