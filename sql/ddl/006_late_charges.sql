-- Statements of late-payment charges on invoices paid late (issue 16 §3; Code de commerce L441-10;
-- docs/policy.md "Statements of late-payment charges"; tasks/late_charges.py).
-- Run at every start (ensure_schema) and by dispatch (ledger.ensure_tables): idempotent.
--
-- Ids: statement_id = LC|customer_id|currency|period  e.g. LC|C042|EUR|2025-07
--      delivery_id  = statement_id|channel            e.g. LC|C042|EUR|2025-07|email
-- A statement's deliveries sit in `deliveries` with action_id = statement_id (like the recaps':
-- the ladder's dispatch queries join dunning_actions and never pick them up).

-- One row per statement: an action-like record, approved like a formal notice.
create table if not exists late_charge_statements (
    statement_id       varchar primary key,
    as_of              date not null,           -- the run date that made it
    customer_id        varchar not null,
    currency           varchar not null,
    period             varchar not null,        -- 2025-07 (monthly) or 2025-Q3 (quarterly)
    period_start       date not null,
    period_end         date not null,
    mode               varchar not null,        -- 'live' or 'replay' (backfill: simulated)
    status             varchar not null,        -- pending_approval, planned, approved, rejected, simulated;
                                                -- once sending: sent, partly_sent, failed (tasks/late_charges.py refresh_statuses)
    requires_approval  boolean not null,
    invoice_ids        varchar[] not null,
    interest_amount    decimal(38,2) not null,
    indemnity_amount   decimal(38,2) not null,
    indemnity_currency varchar not null,
    charges_total      decimal(38,2) not null,  -- interest + the indemnities when in the unit's currency
    reference_margin   decimal(9,4) not null,   -- the margin over the reference rate, points
    created_at         timestamp not null,
    decided_by         varchar,
    decided_at         timestamp,
    decision_reason    varchar,
    decided_run_id     varchar
);

-- One row per invoice charged: an invoice is charged once, ever (the primary key).
create table if not exists late_charges (
    invoice_id         varchar primary key,
    customer_id        varchar not null,
    currency           varchar not null,
    due_date           date not null,
    paid_on            date not null,           -- the payments naming it reached its amount
    amount             decimal(18,2) not null,
    days_late          integer not null,        -- paid_on − due_date
    interest_from      date not null,           -- first day charged: due_date + 1, or the day after a sent notice's figures
    interest_amount    decimal(38,2) not null,  -- rounded half-up to the cent
    indemnity_amount   decimal(18,2) not null,  -- 0 when a sent notice already claimed it
    indemnity_currency varchar not null,
    statement_id       varchar not null,
    charged_on         date not null
);

-- The interest of each charged invoice by half-year and by payment (what the statement prints).
create table if not exists late_charge_periods (
    invoice_id      varchar not null,
    half_year       varchar not null,
    period_start    date not null,
    period_end      date not null,
    days            integer not null,
    reference_rate  decimal(9,4) not null,
    annual_rate     decimal(9,4) not null,
    open_amount     decimal(18,2) not null,
    interest        decimal(38,10) not null,
    primary key (invoice_id, period_start)
);
