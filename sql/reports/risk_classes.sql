-- report: risk_classes
-- grain: one row per (currency, risk_class) on as_of: the units of that class in debtor_profile,
--        their open and overdue amounts, and how many of them are on the credit watch
-- used by: tasks/report/data.py (the section "Debtor profiles", the workbook's sheet "Profiles")
with

profiles as (
    select * from debtor_profile where as_of = $as_of
),

watched as (
    select customer_id, currency from credit_watch where as_of = $as_of
)

select
    profiles.currency,
    profiles.risk_class,
    count(*) as units,
    sum(profiles.open_amount) as open_amount,
    sum(profiles.overdue_amount) as overdue_amount,
    count(watched.customer_id) as watched_units
from profiles
left join watched
    on watched.customer_id = profiles.customer_id
   and watched.currency = profiles.currency
group by profiles.currency, profiles.risk_class
order by profiles.currency, profiles.risk_class
