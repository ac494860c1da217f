-- The contract's output tables (shared/spec/contract.md §4). Created once; models fill them.
-- Money is decimal(18,2) per row (an invoice, a payment) and decimal(38,2) for sums (a balance,
-- an action's amount due), which must never overflow; dates are dates. Snapshot tables are keyed by as_of: a re-run of a
-- date replaces that date's rows and leaves the others.

create table if not exists invoice_snapshot (
    as_of          date not null,
    invoice_id     varchar not null,
    customer_id    varchar not null,
    currency       varchar not null,
    kind           varchar not null,
    issue_date     date not null,
    due_date       date not null,
    amount         decimal(18,2) not null,
    open_amount    decimal(18,2) not null,
    days_past_due  integer not null,
    bucket         varchar not null,
    held           boolean not null,
    hold_kind      varchar,
    hold_scope     varchar          -- 'invoice' or 'customer': what the active hold names
);

create table if not exists aged_balance (
    as_of          date not null,
    customer_id    varchar not null,
    currency       varchar not null,
    bucket         varchar not null,
    amount         decimal(38,2) not null,  -- a sum
    invoice_count  integer not null
);

create table if not exists rejected_rows (
    as_of          date not null,   -- the run date whose ingest rejected the row
    loaded_at      timestamp not null,
    source         varchar not null,  -- file path, postgres table or API URL (no credentials)
    entity         varchar not null,
    row_number     bigint,           -- row in the file as a spreadsheet shows it (header = row 1)
    raw            varchar,          -- the row as read, as JSON
    reason         varchar not null,
    action         varchar not null  -- 'rejected' (row not loaded) or 'field_dropped'
);

create table if not exists unit_stage (
    as_of              date not null,
    customer_id        varchar not null,
    currency           varchar not null,
    target_stage       varchar,
    current_stage      varchar,
    episode_id         varchar,
    held               boolean not null,
    hold_reason        varchar,
    driving_invoice_id varchar,
    dunnable_amount    decimal(38,2) not null  -- a sum
);

create table if not exists dunning_actions (
    action_id          varchar primary key,
    as_of              date not null,
    customer_id        varchar not null,
    currency           varchar not null,
    episode_id         varchar not null,
    stage              varchar not null,
    stage_rank         integer not null,
    driving_invoice_id varchar,
    amount_due         decimal(38,2) not null,
    invoice_ids        varchar[] not null,
    status             varchar not null,
    mode               varchar not null,  -- 'live' (nightly run) or 'replay' (backfill)
    interest_amount    decimal(38,2),
    indemnity_amount   decimal(38,2),
    charges_total      decimal(38,2),
    created_at         timestamp not null,
    decided_by         varchar,
    decided_at         timestamp,
    decision_reason    varchar
);

create table if not exists deliveries (
    delivery_id         varchar primary key,
    action_id           varchar not null,
    channel             varchar not null,
    status              varchar not null,
    provider            varchar,
    provider_message_id varchar,
    attempts            integer not null default 0,
    last_error          varchar,
    sent_at             timestamp,
    artifact_path       varchar,
    created_at          timestamp not null,
    updated_at          timestamp not null
);

create table if not exists recovery_metrics (
    as_of           date not null,
    currency        varchar not null,
    metric          varchar not null,
    dimension       varchar not null,
    dimension_value varchar not null,
    value           decimal(38,4) not null
);

-- runs: the audit record of every run, see 004_audit.sql.
