-- model: int_metrics_pit_units
-- grain: one row per (at_date, customer_id, currency) whose point-in-time open amounts the
--        metrics of as_of need and that must be allocated again:
--          every unit on as_of, as_of − 30 and as_of − 90 (AR terms, recovery by age);
--          the unit of each measured action on its action date and 30 days later;
--        except on the dates of metrics_snapshot_dates, whose invoice_snapshot and aged_balance
--        the caller wrote from this same staging (read there instead, by int_metrics_open_at,
--        int_metrics_claims_open_at and int_metrics_credit_at)
-- materialized: temp
with

units as (
    select customer_id, currency from stg_invoices
    union
    select customer_id, currency from stg_payments
),

balance_dates as (
    select unnest([cast($as_of as date), cast($as_of as date) - 30, cast($as_of as date) - 90]) as at_date
),

every_unit as (
    select dates.at_date, units.customer_id, units.currency
    from units
    cross join balance_dates as dates
),

action_units as (
    select action_date as at_date, customer_id, currency from int_metrics_actions
    union all
    select action_date + 30, customer_id, currency from int_metrics_actions
),

needed as (
    select * from every_unit
    union all
    select * from action_units
)

select distinct
    at_date,
    customer_id,
    currency,
    strftime(at_date, '%Y-%m-%d') || '|' as id_prefix  -- written in front of the ids (int_metrics_invoices_as_of)
from needed
where at_date not in (select at_date from metrics_snapshot_dates)
