-- report: watched_units
-- grain: one row per unit on the credit watch of as_of (credit_watch), with the customer's name
--        and what the debtor said (broken promises and disputes of its debtor_profile): largest
--        overdue amount first within each currency
-- used by: tasks/report/main.py (the Prefect artifact `relance-credit-watch`), tasks/report/page.py
--          (the credit-watch list of the section "Debtor profiles"), tasks/report/workbook.py (the
--          sheet "Credit watch")
with

watched as (
    select * from credit_watch where as_of = $as_of
),

profiles as (
    select customer_id, currency, broken_promises, disputes
    from debtor_profile
    where as_of = $as_of
),

customers as (
    select customer_id, name from stg_customers
)

select
    watched.customer_id,
    customers.name,
    watched.currency,
    watched.risk_class,
    watched.score,
    watched.reasons,
    watched.overdue_amount,
    watched.max_days_past_due,
    profiles.broken_promises,
    profiles.disputes
from watched
left join profiles
    on watched.customer_id = profiles.customer_id
   and watched.currency = profiles.currency
left join customers on watched.customer_id = customers.customer_id
order by watched.currency, watched.overdue_amount desc, watched.customer_id
