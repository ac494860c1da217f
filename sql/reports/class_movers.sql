-- report: class_movers
-- grain: one row per unit whose risk class on as_of differs from its class on the previous date
--        measured (the latest as_of of debtor_profile before it): worst first — the class it has
--        now (D, C, B, A, new), then the classes it fell, then its open amount
-- used by: tasks/report/data.py (the movers of the section "Debtor profiles", the workbook)
with

previous_date as (
    select max(as_of) as as_of from debtor_profile where as_of < $as_of
),

today as (
    select * from debtor_profile where as_of = $as_of
),

before as (
    select debtor_profile.*
    from debtor_profile
    inner join previous_date on debtor_profile.as_of = previous_date.as_of
),

ranked as (
    select
        today.customer_id,
        today.currency,
        before.as_of as previous_as_of,
        before.risk_class as previous_class,
        today.risk_class,
        before.score as previous_score,
        today.score,
        today.open_amount,
        today.overdue_amount,
        -- worse is higher: new (no history) ranks below A
        case today.risk_class when 'D' then 4 when 'C' then 3 when 'B' then 2 when 'A' then 1 else 0 end
            as class_rank,
        case before.risk_class when 'D' then 4 when 'C' then 3 when 'B' then 2 when 'A' then 1 else 0 end
            as previous_rank
    from today
    inner join before
        on before.customer_id = today.customer_id
       and before.currency = today.currency
    where before.risk_class <> today.risk_class
)

select
    ranked.customer_id,
    ranked.currency,
    customers.name,
    ranked.previous_as_of,
    ranked.previous_class,
    ranked.risk_class,
    ranked.previous_score,
    ranked.score,
    ranked.open_amount,
    ranked.overdue_amount
from ranked
left join stg_customers as customers on customers.customer_id = ranked.customer_id
order by
    ranked.currency,
    ranked.class_rank desc,
    ranked.class_rank - ranked.previous_rank desc,
    ranked.open_amount desc,
    ranked.customer_id
