-- The escalation ladder's tables (shared/spec/contract.md §3–4), beside those of 001.
-- Run at every start (ensure_schema): each statement is idempotent.
--
-- Ids are readable and deterministic (docs/policy.md, "Ids"):
--   episode_id  = customer_id|currency|n          e.g. C042|EUR|2
--   action_id   = episode_id|stage                e.g. C042|EUR|2|formal_notice
--   delivery_id = action_id|channel               e.g. C042|EUR|2|formal_notice|registered_letter

-- One row per dunning episode of a unit: opened at the first run where the unit has a target
-- stage, closed at the first run where it has nothing dunnable left (and is not held).
create table if not exists dunning_episodes (
    episode_id   varchar primary key,
    customer_id  varchar not null,
    currency     varchar not null,
    episode_no   integer not null,   -- 1, 2, … per unit
    opened_on    date not null,      -- the run date that opened it
    closed_on    date                -- the run date that closed it; null while open
);

-- unit_stage: why a unit did or did not take a step on as_of.
alter table unit_stage add column if not exists driving_days_past_due integer;
alter table unit_stage add column if not exists hold_id varchar;            -- the customer-level hold, if any
alter table unit_stage add column if not exists held_invoices integer;      -- open invoices under an invoice-level hold
alter table unit_stage add column if not exists closed_episode_id varchar;  -- the episode this run closed
alter table unit_stage add column if not exists action_id varchar;          -- the unit's action dated as_of, if any
alter table unit_stage add column if not exists no_action_reason varchar;   -- held, no_target, at_target, pending_approval, formal_notice_not_sent, notice_deadline, missing_reference_rate, min_gap, non_business_day
alter table unit_stage add column if not exists wait_reason varchar;        -- below_tolerance, formal_notice_not_sent, notice_deadline, missing_reference_rate
alter table unit_stage add column if not exists wait_detail varchar;        -- the same in words, with the amounts, episode or half-year
-- the formal notice's registered letter (relance post import; docs/policy.md "Registered letters")
alter table unit_stage add column if not exists notice_sent_on date;       -- deposited (tracking), else the notice's date
alter table unit_stage add column if not exists notice_received_on date;   -- received, or refused / unclaimed: first presented
alter table unit_stage add column if not exists notice_deadline date;      -- notice_received_on + formal_notice.deadline_days
-- the ladder per segment and risk (docs/policy.md "Ladders")
alter table unit_stage add column if not exists ladder varchar;             -- standard or ladders[].name
alter table unit_stage add column if not exists ladder_rule varchar;        -- ladder_rules[].name, or default
alter table unit_stage add column if not exists ladder_risk_class varchar;  -- the class the rules read (as_of's profile)

-- dunning_actions: what the ladder needs to read back, and the charges' currency.
alter table dunning_actions add column if not exists requires_approval boolean;
alter table dunning_actions add column if not exists days_past_due integer;       -- of the driving invoice, on as_of
alter table dunning_actions add column if not exists indemnity_currency varchar;  -- currency of indemnity_amount
alter table dunning_actions add column if not exists ladder varchar;              -- the ladder climbed (null: before ladders, standard)
alter table dunning_actions add column if not exists ladder_rule varchar;         -- the ladder rule that chose it, or default
alter table dunning_actions add column if not exists interest_from date;          -- legal-rate charges: first day of interest (after the notice)

-- deliveries: the channel the stage asked for when the delivery fell back to a letter.
alter table deliveries add column if not exists fallback_from varchar;  -- e.g. 'email' or 'email,sms'

-- Late-payment charges of a formal_notice or litigation action, per overdue invoice it claims.
create table if not exists action_charges (
    action_id          varchar not null,
    invoice_id         varchar not null,
    customer_id        varchar not null,
    currency           varchar not null,
    due_date           date not null,
    open_amount        decimal(18,2) not null,
    days_late          integer not null,        -- days from the day after due_date to as_of, inclusive
    interest_amount    decimal(38,2) not null,  -- rounded half-up to the cent, per invoice (years on 16 digits: wide)
    indemnity_amount   decimal(18,2) not null,  -- fixed recovery indemnity
    indemnity_currency varchar not null,
    primary key (action_id, invoice_id)
);

-- The interest of each charged invoice, split by the half-years its late days fall in
-- (the reference rate changes on 1 January and 1 July) and by the payments naming it (a partial
-- payment lowers the base from its date): what a letter prints line by line.
create table if not exists action_charge_periods (
    action_id       varchar not null,
    invoice_id      varchar not null,
    half_year       varchar not null,         -- e.g. 2026-H1
    period_start    date not null,
    period_end      date not null,
    days            integer not null,
    reference_rate  decimal(9,4) not null,    -- percent
    annual_rate     decimal(9,4) not null,    -- reference rate + margin, percent
    open_amount     decimal(18,2) not null,   -- the base: what was owed on each day of the period
    interest        decimal(38,10) not null,  -- before rounding
    primary key (action_id, invoice_id, period_start)
);
