-- model: int_ladder_charges
-- grain: one row per (charged action, claimed overdue invoice): the interest of all its late
--        days rounded half-up to the cent, and the fixed recovery indemnity
-- materialized: temp
with

claims as (
    select * from int_ladder_claims where charged
),

periods as (
    select * from int_ladder_charge_periods
),

interest as (
    select action_id, invoice_id, sum(numerator_e6) as numerator_e6
    from periods
    group by action_id, invoice_id
)

select
    claims.action_id,
    claims.invoice_id,
    claims.customer_id,
    claims.currency,
    claims.due_date,
    claims.open_amount,
    claims.days_past_due as days_late,
    -- cents = numerator / days_in_year, half-up: floor((2n + d) / 2d), numerator in millionths
    cast(
        cast((2 * coalesce(interest.numerator_e6, 0) + $days_in_year * 1000000) // (2 * $days_in_year * 1000000) as decimal(38,0))
        * cast(0.01 as decimal(3,2))
        as decimal(38,2)
    ) as interest_amount,
    cast($indemnity as decimal(18,2)) as indemnity_amount,
    $indemnity_currency as indemnity_currency
from claims
left join interest using (action_id, invoice_id)
