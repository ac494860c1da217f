-- What debtors said: call and visit outcomes recorded by collectors (issue 14; docs/policy.md
-- "Outcomes"). Append-only: a row is never updated nor deleted; a later row (a new promise, a
-- dispute's resolution) supersedes or closes an earlier one. Run at every start (ensure_schema):
-- each statement is idempotent.
--
-- outcome_id is a hash of the content (customer, currency, kind, said_on, amount, date, invoices,
-- reason, instalments, resolution, note): re-importing the same worklist inserts nothing.
-- The deadlines (hold_until, instalments' grace_until) are fixed when the outcome is recorded,
-- from the policy in force then (outcomes.*_grace_days): the recap the debtor receives states
-- them, and a later edit of the policy does not move a deadline already agreed.
create table if not exists outcomes (
    outcome_id     varchar primary key,
    customer_id    varchar not null,
    currency       varchar,               -- the unit's currency (promise, plan, paid_claimed, dispute)
    kind           varchar not null,      -- reached, no_answer, wrong_number, promise, dispute, plan,
                                          -- paid_claimed, refused; resolution (of a dispute)
    said_on        date not null,         -- when the debtor said it
    amount         decimal(18,2),         -- promise: the amount promised; plan: its total
    promised_date  date,                  -- promise: the date promised; plan: the last instalment
    hold_until     date,                  -- promise: promised_date + grace; plan: the last instalment's
                                          -- grace_until; paid_claimed: said_on + hold days
    invoice_ids    varchar[],             -- dispute: the disputed invoices; plan: the invoices it settles
    reason         varchar,               -- dispute: a reason code of the policy (outcomes.dispute_reasons)
    resolves_id    varchar,               -- resolution: the dispute's outcome_id
    resolution     varchar,               -- resolution: credit_note_expected, rejected, paid
    note           varchar,
    phone          varchar,               -- wrong_number: the number found wrong
    action_id      varchar,               -- import: the call or visit action of the worklist row
    source         varchar not null,      -- cli, import, prefect
    source_file    varchar,               -- import: the worklist file
    source_row     integer,               -- import: its spreadsheet row (header = 1)
    recorded_by    varchar not null,      -- who recorded it
    recorded_at    timestamp not null     -- when (UTC)
);

-- A plan's instalments (one row per instalment; written with their plan, in one transaction).
create table if not exists outcome_instalments (
    outcome_id     varchar not null,
    instalment_no  integer not null,      -- 1, 2, … in date order
    due_date       date not null,
    amount         decimal(18,2) not null,
    grace_until    date not null,         -- due_date + outcomes.instalment_grace_days: missed when the
                                          -- payments since the plan do not cover the instalments up
                                          -- to this one by then
    primary key (outcome_id, instalment_no)
);

-- unit_stage: a unit held by both a source hold and an outcome says so (the source wins nothing
-- silently), e.g. "source hold H7 (dispute) and outcome 3f2a… (promise until 2026-12-18)".
alter table unit_stage add column if not exists hold_conflict varchar;
