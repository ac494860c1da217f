-- The payment-behaviour profile of each unit at each measured date (docs/metrics.md "Debtor
-- profile"), written by measure (sql/marts/debtor_profile.sql), and the credit watch derived
-- from it (sql/marts/credit_watch.sql). Like the contract's marts, no primary key (the inserts of
-- a night stay cheap at 1M invoices): the keys are their YAML's, checked by measure (require_keys).
create table if not exists debtor_profile (
    as_of                 date not null,
    customer_id           varchar not null,
    currency              varchar not null,
    paid_invoices         integer not null,        -- invoices paid in the 12 months up to as_of
    paid_late             integer not null,        -- of which paid after their due date
    paid_late_30          integer not null,        -- of which paid more than 30 days late
    paid_amount           decimal(38,2) not null,
    avg_days_late         decimal(18,2),           -- amount-weighted, days (early payment counts 0)
    share_paid_late       decimal(9,2),            -- percent of paid_invoices
    share_paid_late_30    decimal(9,2),            -- percent of paid_invoices
    avg_days_late_3m      decimal(18,2),           -- invoices paid in the last 3 months
    avg_days_late_prev_9m decimal(18,2),           -- invoices paid in the 9 months before
    trend_days            decimal(18,2),           -- avg_days_late_3m − avg_days_late_prev_9m
    open_amount           decimal(38,2) not null,  -- open at as_of
    overdue_amount        decimal(38,2) not null,  -- overdue at as_of (the exposure)
    overdue_share         decimal(9,2) not null,   -- percent of open_amount
    max_days_past_due     integer,                 -- the oldest overdue invoice's days past due
    score                 integer,                 -- 0–100, null for `new`
    risk_class            varchar not null         -- A, B, C, D or new
);

-- what debtors said (issue 16 §1, "once outcomes exist"): promises and plans broken, disputes not
-- upheld, in the 12 months up to as_of; both lower the score
alter table debtor_profile add column if not exists broken_promises integer;
alter table debtor_profile add column if not exists disputes integer;
-- the audited run that built the rows of a date (tasks/audit.py): the ladder step builds the profile
-- when a ladder rule reads the risk class, and measure, later in the same run, reads it
alter table debtor_profile add column if not exists built_by_run varchar;

create table if not exists credit_watch (
    as_of              date not null,
    customer_id        varchar not null,
    currency           varchar not null,
    risk_class         varchar not null,
    score              integer,
    overdue_amount     decimal(38,2) not null,
    max_days_past_due  integer,
    reasons            varchar not null    -- 'class', 'overdue', 'plan' (a broken payment plan), comma-separated
);

-- unit_stage shows the latest profile measured before its date
alter table unit_stage add column if not exists risk_score integer;
alter table unit_stage add column if not exists risk_class varchar;
alter table unit_stage add column if not exists profile_as_of date;

-- What cash to expect (docs/metrics.md "Expected collections"): the expected payment date of
-- each open invoice, and the sums expected within 7, 30, 60 and 90 days per currency.
create table if not exists expected_payments (
    as_of               date not null,
    invoice_id          varchar not null,
    customer_id         varchar not null,
    currency            varchar not null,
    due_date            date not null,
    open_amount         decimal(18,2) not null,
    basis               varchar not null,   -- 'debtor' (its own delays) or 'currency' (a new debtor)
    expected_days_late  integer not null,
    expected_date       date not null
);

create table if not exists cash_forecast (
    as_of            date not null,
    currency         varchar not null,
    horizon_days     integer not null,
    expected_amount  decimal(38,2) not null,
    invoice_count    integer not null
);
