"""escalate: the escalation ladder for one date — each unit's stage and episode, the day's new
actions and their deliveries, with late-payment charges (contract §3; docs/policy.md).

SQL decides (sql/intermediate/int_ladder_*.sql, sql/marts/unit_stage.sql); Python loads the
policy's small lookup tables, checks the reference rates, and moves the decided rows into the
contract's tables. The ladder's state is read back from those tables (the open episode and its
last action dated before as_of), so re-running a date is a no-op. A live run's state is the real
actions only (a backfill's simulated ones are history, never a step); a replay's state is the real
actions and its own simulated ones (contract §3, "Live state and replays"; docs/policy.md §4).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from relance.core.errors import UserError
from relance.core.policy import Policy, load_policy
from tasks import warehouse
from tasks.calendar import write_calendar
from tasks.step import get_logger, step

MODES = ("live", "replay")

#: The ladder's targets, in the order the step needs them (the runner builds what each reads, from
#: the SQL: tasks/warehouse.py): the decisions; on a day when some unit takes a step (most weekend
#: days none does) its claims, then — once the rates are checked — the new actions with their
#: charges and deliveries; after the writes, the unit_stage mart.
DECISIONS = "intermediate/int_ladder_decisions"
CLAIMS = "intermediate/int_ladder_claims"
NEW_ACTIONS = "intermediate/int_ladder_new_actions"
UNIT_STAGE = "marts/unit_stage"
#: The marts a nightly run has written for as_of once the ladder is decided: their key and not_null
#: tests (sql/marts/*.yml) are checked on that date's rows before anything is sent.
NIGHTLY_MARTS = ["marts/rejected_rows", "marts/invoice_snapshot", "marts/aged_balance", UNIT_STAGE]

# Moving the decided rows into the tables. An id that exists already is left as it is: a
# delivery once written (planned, sent, …) is never changed by a re-run or a backfill.
_EPISODE_WRITES = [
    # undo this date's episode openings and closings, then record them again (same ids)
    """delete from dunning_episodes
       where opened_on = $as_of
         and episode_id not in (select episode_id from dunning_actions where as_of >= $as_of)""",
    "update dunning_episodes set closed_on = null where closed_on = $as_of",
    """insert or ignore into dunning_episodes by name
       select episode_id, customer_id, currency, new_episode_no as episode_no, cast($as_of as date) as opened_on
       from int_ladder_decisions where opens""",
    """update dunning_episodes set closed_on = $as_of
       where episode_id in (select closed_episode_id from int_ladder_decisions where closes)""",
]
# The messages and charges go with the actions this run wrote (dated as_of: a unit that had an
# action dated as_of already takes no new step), never with an older action of the same id.
#
# A live step takes the place of a simulated action of the same id (same episode and stage, from a
# backfill): the step has now really been taken, and the real action is the record (contract §3,
# "Live state and replays"). The simulated action, its simulated deliveries and charges go; no
# sent delivery is ever touched (a simulated action has none). A replay never replaces anything:
# a real action of the same id stays, and the replay adds no twin of it.
_SUPERSEDED = """(select action_id from dunning_actions
                   where status = 'simulated' and $mode = 'live'
                     and action_id in (select action_id from int_ladder_new_actions))"""
_ACTION_WRITES = [
    f"delete from action_charge_periods where action_id in {_SUPERSEDED}",
    f"delete from action_charges where action_id in {_SUPERSEDED}",
    f"delete from deliveries where status in ('simulated', 'skipped', 'undeliverable') and action_id in {_SUPERSEDED}",
    f"delete from dunning_actions where action_id in {_SUPERSEDED}",
    # run_id: the audited run that wrote the action (tasks/audit.py)
    "insert or ignore into dunning_actions by name select *, cast($run_id as varchar) as run_id from int_ladder_new_actions",
    """insert or ignore into deliveries by name
       select * from int_ladder_deliveries
       where action_id in (select action_id from dunning_actions where as_of = $as_of)""",
    """insert or ignore into action_charges by name
       select * from int_ladder_charges
       where action_id in (select action_id from dunning_actions where as_of = $as_of)""",
    """insert or ignore into action_charge_periods by name
       select * exclude (numerator_e6) from int_ladder_charge_periods
       where action_id in (select action_id from dunning_actions where as_of = $as_of)""",
]


def _half_year_end(start: date) -> date:
    return date(start.year, 6, 30) if start.month == 1 else date(start.year, 12, 31)


def write_policy_tables(con, pol: Policy) -> None:
    """The policy as small temp tables: ladder_stages and ladder_stage_channels (per ladder and
    global stage rank), ladder_defs (each ladder's charge rule and first offset), ladder_rules,
    ladder_tolerance, ladder_rates (reference rates) and ladder_legal_rates (legal interest)."""
    con.execute(
        """
        create or replace temp table ladder_stages (
            ladder varchar,               -- standard (the `stages:` catalogue) or ladders[].name
            stage_rank integer,           -- the catalogue's rank, the same in every ladder
            stage varchar, offset_days integer, min_amount decimal(18,2),
            requires_approval boolean,
            before_due_date boolean,      -- passed over when the driving invoice is already overdue
            claims_overdue_only boolean,  -- after the due date: claims only overdue invoices
            charged boolean,              -- states late-payment charges (stages[].charged)
            after_formal_notice boolean,  -- above the legal notice (stages[].legal_notice): taken only
                                          -- once it was sent in the episode
            legal_notice boolean          -- the legal notice itself
        )
        """
    )
    notice = pol.notice_stage
    notice_rank = pol.stages.index(notice) + 1 if notice is not None else None
    ladders = {name: pol.ladder_stages(name) for name in pol.ladder_names}
    con.executemany(
        "insert into ladder_stages values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                name,
                rank,
                s.code,
                s.offset_days,
                s.min_amount,
                s.requires_approval,
                s.offset_days < 0,
                s.offset_days > 0,
                s.charged,
                notice_rank is not None and rank > notice_rank,
                s.legal_notice,
            )
            for name, stages in ladders.items()
            for rank, s in stages
        ],
    )
    con.execute(
        """
        create or replace temp table ladder_defs (
            ladder varchar primary key,
            first_offset integer,            -- its first stage's offset: invoices are dunnable from it
            charge_kind varchar,             -- commercial, legal_rate, none
            margin_points decimal(9,4),      -- commercial: points over the reference rate
            indemnity decimal(18,2),         -- commercial: fixed indemnity per overdue invoice
            indemnity_currency varchar,
            charge_segments varchar[],       -- the segments its charges apply to (null: all)
            letters_require_approval boolean -- an action sending a letter waits for approval
        )
        """
    )
    lpc = pol.late_payment_charges
    rows = []
    for name, stages in ladders.items():
        kind, margin, indemnity, segments = pol.charge_rule(name)
        lad = pol.ladder(name)
        rows.append(
            (
                name,
                stages[0][1].offset_days,
                kind,
                margin,
                indemnity,
                lpc.indemnity_currency,
                list(segments) if segments is not None else None,
                bool(lad is not None and lad.letters_require_approval),
            )
        )
    con.executemany("insert into ladder_defs values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        """
        create or replace temp table ladder_rules (
            position integer, rule varchar, ladder varchar, segments varchar[], risk_classes varchar[],
            customers varchar[], tag varchar, min_amount decimal(18,2)
        )
        """
    )
    if pol.ladder_rules:
        con.executemany(
            "insert into ladder_rules values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    r.name,
                    r.ladder,
                    list(r.when.segment) if r.when.segment is not None else None,
                    list(r.when.risk_class) if r.when.risk_class is not None else None,
                    list(r.when.customers) if r.when.customers is not None else None,
                    r.when.tag,
                    r.when.min_amount,
                )
                for i, r in enumerate(pol.ladder_rules, start=1)
            ],
        )
    con.execute("create or replace temp table ladder_tolerance (currency varchar primary key, amount decimal(18,2))")
    if pol.tolerance.by_currency:
        con.executemany("insert into ladder_tolerance values (?, ?)", pol.tolerance.rows())
    con.execute(
        "create or replace temp table ladder_stage_channels "
        "(ladder varchar, stage_rank integer, stage varchar, position integer, channel varchar)"
    )
    con.executemany(
        "insert into ladder_stage_channels values (?, ?, ?, ?, ?)",
        [
            (name, rank, s.code, pos, ch)
            for name, stages in ladders.items()
            for rank, s in stages
            for pos, ch in enumerate(s.channels, start=1)
        ],
    )
    con.execute(
        "create or replace temp table ladder_rates (half_year varchar, valid_from date, valid_to date, reference_rate decimal(9,4))"
    )
    if pol.reference_rates:
        con.executemany(
            "insert into ladder_rates values (?, ?, ?, ?)",
            [(r.half_year, r.start, _half_year_end(r.start), r.rate) for r in pol.reference_rates],
        )
    con.execute(
        "create or replace temp table ladder_legal_rates (half_year varchar, valid_from date, valid_to date, legal_rate decimal(9,4))"
    )
    # the debtor profile's class of each unit, when a ladder rule reads it (Ladder.risk_classes)
    con.execute("create or replace temp table ladder_risk (customer_id varchar, currency varchar, risk_class varchar)")
    legal = pol.legal_interest_rates.rows()
    if legal:
        con.executemany(
            "insert into ladder_legal_rates values (?, ?, ?, ?)",
            [(h, start, _half_year_end(start), rate) for h, start, rate in legal],
        )


class Ladder:
    """The policy's lookup tables on one connection, ready to run the ladder for dates in [start, end]
    (the business-day calendar covers that span; a date outside it rebuilds the calendar)."""

    def __init__(self, con, pol: Policy, start: date, end: date) -> None:
        self.con, self.pol = con, pol
        write_policy_tables(con, pol)
        self.profile_seconds = 0.0
        self._calendar(start, end)

    def risk_classes(self, as_of: date, run_id: str | None = None) -> float:
        """When a ladder rule reads the risk class: the debtor profile of as_of (temp table ladder_risk),
        point in time — from the source as known at as_of (int_invoices_as_of, int_payments_as_of)
        and the open amounts of as_of's invoice_snapshot (the aging ran first). The debtor_profile
        mart is built for as_of (the same model measure builds after the ladder, with the same
        figures) and its rows carry `run_id` (built_by_run): measure, later in the same run, reads
        them instead of building them again, and a backfill has the profile of each date too. A
        profile this run already built is read (a retried step); outside an audited run (no run_id)
        a date measured already is read. Returns the seconds spent."""
        con = self.con
        con.execute("delete from ladder_risk")
        if not self.pol.needs_risk_class:
            return 0.0
        started = time.perf_counter()
        from tasks.measure import profile_built, profile_params

        if not profile_built(con, as_of, run_id):
            from tasks.age import write_policy_buckets

            cur = con.cursor()  # its own temp schema: the ladder's int_* temp tables stay as they are
            try:
                write_policy_buckets(cur, self.pol)
                cur.execute(
                    """
                    create or replace temp table int_metrics_open_at as
                    select as_of as at_date, customer_id, currency, invoice_id, issue_date, due_date, open_amount,
                           cast(days_past_due as bigint) as days_past_due, bucket
                    from invoice_snapshot where as_of = $d
                    """,
                    {"d": as_of},
                )
                warehouse.build(
                    cur,
                    "marts/debtor_profile",
                    {"as_of": as_of, **profile_params(self.pol), "built_by_run": run_id},
                    built=("intermediate/int_metrics_open_at",),
                )
            finally:
                cur.close()
        con.execute(
            "insert into ladder_risk select customer_id, currency, risk_class from debtor_profile where as_of = $d",
            {"d": as_of},
        )
        seconds = time.perf_counter() - started
        self.profile_seconds += seconds
        return seconds

    def _calendar(self, start: date, end: date) -> None:
        countries = [
            r[0]
            for r in self.con.execute("select distinct country from stg_customers where country is not null").fetchall()
        ]
        unknown = write_calendar(self.con, countries, start, end)
        if unknown:
            get_logger().warning(
                "escalate: no public-holiday data for %s; weekends only for customers there", ", ".join(unknown)
            )
        self.span = (start, end)

    def params(self, as_of: date, mode: str, run_id: str | None = None) -> dict:
        pol, charges = self.pol, self.pol.late_payment_charges
        return {
            "as_of": as_of,
            "mode": mode,
            "min_gap_days": pol.min_gap_days,
            "receipt_wait_days": pol.receipt_wait_days,
            "default_tolerance": pol.tolerance.default,
            # the legal notice's code (stages[].legal_notice); None when the ladder has none
            "notice_stage": pol.notice_stage.code if pol.notice_stage is not None else None,
            "business_days_only": pol.business_days_only,
            "days_in_year": charges.days_in_year,
            "now": datetime.now(UTC).replace(tzinfo=None),
            "run_id": run_id,
        }

    def check_rates(self, as_of: date) -> None:
        """A safety net: the decisions already keep back every unit whose charges need a half-year
        with no reference rate (no_action_reason missing_reference_rate), so no step taken today
        should need one; if one did, refuse (PolicyError) before anything is written."""
        earliest = warehouse.scalar(self.con, "select min(due_date) from int_ladder_claims where charged")
        if earliest is not None:
            self.pol.require_rates(earliest + timedelta(days=1), as_of)

    def run(self, as_of: date, mode: str = "live", run_id: str | None = None) -> dict:
        """Decide and write the ladder for as_of; returns the day's counts. run_id: the audited run
        writing the actions (tasks/audit.py)."""
        if mode not in MODES:
            raise UserError(f"escalate mode {mode!r}: expected one of {', '.join(MODES)}")
        if not (self.span[0] <= as_of <= self.span[1]):
            self._calendar(min(as_of, self.span[0]), max(as_of, self.span[1]))
        started = time.perf_counter()
        params = self.params(as_of, mode, run_id)
        con = self.con
        profile_seconds = self.risk_classes(as_of, run_id)
        built = warehouse.build(con, DECISIONS, params)
        acting = warehouse.scalar(con, "select count(*) from int_ladder_decisions where acts") > 0
        if acting:
            built |= warehouse.build(con, CLAIMS, params, built)
            self.check_rates(as_of)
            built |= warehouse.build(con, NEW_ACTIONS, params, built)
        writes = _EPISODE_WRITES + (_ACTION_WRITES if acting else [])
        with warehouse.transaction(con):
            for sql in writes:
                con.execute(sql, warehouse.bind_params(sql, params))
        warehouse.build(con, UNIT_STAGE, params, built)
        summary = self.summary(as_of, mode, acting, time.perf_counter() - started)
        summary["seconds_risk_profile"] = round(profile_seconds, 3)
        return summary

    def summary(self, as_of: date, mode: str, acting: bool, seconds: float) -> dict:
        con = self.con
        units = con.execute(
            """
            select count(*), count(*) filter (where held),
                   (select count(*) from dunning_episodes where opened_on = $d),
                   (select count(*) from dunning_episodes where closed_on = $d),
                   count(*) filter (where episode_id is not null)
            from int_ladder_decisions
            """,
            {"d": as_of},
        ).fetchone()
        by_stage, by_status, charges, by_ladder = [], [], [], []
        if acting:  # the action models are those of this date only when some unit acted
            # what this run wrote: its actions are dated as_of (an id found dated otherwise was not written)
            con.execute(
                """
                create or replace temp table ladder_written as
                select * from int_ladder_new_actions
                where action_id in (select action_id from dunning_actions where as_of = $d)
                """,
                {"d": as_of},
            )
            by_stage = con.execute(
                "select stage, count(*) from ladder_written group by stage, stage_rank order by stage_rank"
            ).fetchall()
            by_ladder = con.execute(
                "select ladder, count(*) from ladder_written group by ladder order by ladder"
            ).fetchall()
            by_status = con.execute(
                """
                select status, count(*) from int_ladder_deliveries
                where action_id in (select action_id from ladder_written)
                group by status order by status
                """
            ).fetchall()
            charges = con.execute(
                """
                select currency, sum(interest_amount), sum(indemnity_amount), any_value(indemnity_currency), count(*)
                from ladder_written where interest_amount is not null
                group by currency order by currency
                """
            ).fetchall()
        # why units that are due a step did not take it today (gap, weekend, approval, …)
        waiting = con.execute(
            """
            select no_action_reason, count(*) from int_ladder_decisions
            where no_action_reason in ('min_gap', 'non_business_day', 'pending_approval')
            group by no_action_reason order by no_action_reason
            """
        ).fetchall()
        # why units wait for something other than time: tolerance, an unsent formal notice, a rate
        held_back = con.execute(
            """
            select wait_reason, count(*) from int_ladder_decisions
            where wait_reason is not null group by wait_reason order by wait_reason
            """
        ).fetchall()
        # a live run: the simulated actions (backfill history) in the episodes it read, which it
        # did not take as steps — the ladder goes on from the last real one
        replay_history = 0
        if mode == "live":
            replay_history = warehouse.scalar(
                con,
                """
                select count(*) from dunning_actions
                where status = 'simulated'
                  and episode_id in (select episode_id from int_ladder_decisions where episode_id is not null)
                """,
            )
        return {
            "as_of": as_of.isoformat(),
            "mode": mode,
            "waiting_by_reason": dict(waiting),
            "held_back_by_reason": dict(held_back),
            "replay_history_not_taken": replay_history,
            "units": units[0],
            "held_units": units[1],
            "episodes_opened": units[2],
            "episodes_closed": units[3],
            "open_episodes": units[4],
            "actions": sum(n for _, n in by_stage),
            "actions_by_stage": dict(by_stage),
            "actions_by_ladder": dict(by_ladder),
            "deliveries_by_status": dict(by_status),
            "charges": {
                cur: {"actions": n, "interest": str(interest or Decimal("0.00")), "indemnity": f"{indemnity} {ind_cur}"}
                for cur, interest, indemnity, ind_cur, n in charges
            },
            "seconds": round(seconds, 3),
        }


@step(name="escalate")
def escalate(db: str, as_of: date, policy: str | None = None, mode: str = "live", run_id: str | None = None) -> dict:
    """Write unit_stage for as_of and the day's new dunning_actions and deliveries (replay mode:
    deliveries `simulated`). Reads invoice_snapshot of as_of, so `age` runs first."""
    log = get_logger()
    pol = load_policy(policy)
    if mode not in MODES:
        raise UserError(f"escalate mode {mode!r}: expected one of {', '.join(MODES)}")
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        summary = Ladder(con, pol, as_of, as_of).run(as_of, mode, run_id)
        # a mart whose key is violated stops the run here, before dispatch sends anything
        checked = warehouse.require_keys(con, NIGHTLY_MARTS, {"as_of": as_of})
    log.info(
        "escalate: keys and not_null of %s checked for %s in %.1f ms",
        ", ".join(m.split("/")[-1] for m in NIGHTLY_MARTS),
        as_of,
        checked * 1000,
    )
    log.info(
        "escalate (%s): %d units, %d held, %d actions %s, deliveries %s",
        mode,
        summary["units"],
        summary["held_units"],
        summary["actions"],
        summary["actions_by_stage"] or "",
        summary["deliveries_by_status"] or "",
    )
    return summary
