-- model: int_ladder_charge_periods
-- grain: one row per (charged action, claimed invoice, half-year) holding some of the invoice's
--        late days: from the day after its due date to as_of, cut at 1 January and 1 July, each
--        part at that half-year's reference rate plus the margin
-- materialized: temp
with

claims as (
    select * from int_ladder_claims where charged
),

rates as (
    select * from ladder_rates
),

periods as (
    select
        claims.action_id,
        claims.invoice_id,
        rates.half_year,
        greatest(claims.due_date + 1, rates.valid_from) as period_start,
        least(cast($as_of as date), rates.valid_to) as period_end,
        rates.reference_rate,
        cast(rates.reference_rate + $margin_points as decimal(9,4)) as annual_rate,
        claims.open_amount
    from claims
    join rates
        on rates.valid_from <= cast($as_of as date)
       and rates.valid_to >= claims.due_date + 1
),

measured as (
    select
        *,
        datediff('day', period_start, period_end) + 1 as days
    from periods
),

numerators as (
    -- open amount × days × annual rate, exact (scale 6), in millionths as an integer
    select
        *,
        cast(cast(open_amount as decimal(38,2)) * days * annual_rate * 1000000 as hugeint) as numerator_e6
    from measured
)

select
    action_id,
    invoice_id,
    half_year,
    period_start,
    period_end,
    days,
    reference_rate,
    annual_rate,
    open_amount,
    numerator_e6,
    -- numerator / (100 × days_in_year), to 10 decimals half-up, with integer arithmetic only
    cast((2 * numerator_e6 * 100 + $days_in_year) // (2 * $days_in_year) as decimal(38,0))
        * cast(0.0000000001 as decimal(11,10)) as interest
from numerators
