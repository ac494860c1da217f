-- model: int_metrics_pit_units
-- grain: one row per (at_date, customer_id, currency) whose point-in-time open amounts the
--        metrics of as_of need:
--          every unit on as_of, as_of − 30 and as_of − 90 (AR terms, recovery by age);
--          the unit of each measured action on its action date and 30 days later
-- materialized: temp
with

units as (
    select customer_id, currency from stg_invoices
    union
    select customer_id, currency from stg_payments
),

every_unit as (
    select dates.at_date, units.customer_id, units.currency
    from units
    cross join (
        select unnest([cast($as_of as date), cast($as_of as date) - 30, cast($as_of as date) - 90]) as at_date
    ) as dates
),

action_units as (
    select action_date as at_date, customer_id, currency from int_metrics_actions
    union all
    select action_date + 30, customer_id, currency from int_metrics_actions
)

select distinct at_date, customer_id, currency
from (select * from every_unit union all select * from action_units)
