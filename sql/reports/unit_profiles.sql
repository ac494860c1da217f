-- report: unit_profiles
-- grain: one row per unit (customer_id, currency) of debtor_profile of as_of, with the customer's
--        name and whether it is on the credit watch: worst first within each currency — the
--        class (D, C, B, A, new), then the lower score, then the larger overdue amount
-- used by: tasks/report/workbook.py (the sheet "Debtor profiles")
with

profiles as (
    select * from debtor_profile where as_of = $as_of
),

watched as (
    select customer_id, currency from credit_watch where as_of = $as_of
),

customers as (
    select customer_id, name from stg_customers
)

select
    profiles.customer_id,
    customers.name,
    profiles.currency,
    profiles.risk_class,
    profiles.score,
    profiles.paid_invoices,
    profiles.avg_days_late,
    profiles.share_paid_late,
    profiles.trend_days,
    profiles.broken_promises,
    profiles.disputes,
    profiles.open_amount,
    profiles.overdue_amount,
    profiles.max_days_past_due,
    watched.customer_id is not null as watched
from profiles
left join watched
    on profiles.customer_id = watched.customer_id
   and profiles.currency = watched.currency
left join customers on profiles.customer_id = customers.customer_id
order by
    profiles.currency,
    case profiles.risk_class when 'D' then 4 when 'C' then 3 when 'B' then 2 when 'A' then 1 else 0 end desc,
    profiles.score nulls last,
    profiles.overdue_amount desc,
    profiles.customer_id
