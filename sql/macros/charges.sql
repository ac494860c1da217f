-- The late-payment charges (Code de commerce L441-10, D441-5), once, as table macros over the claims
-- they charge (named by string: query_table). The ladder runs them on its claims of the day
-- (int_ladder_charge_periods, int_ladder_charges on int_ladder_claims); dispatch runs the very
-- same rules on the send date's claims (send_charge_periods, send_charges on send_claims).
-- Loaded by the runner on the connection of a model whose header says `-- macros: charges`.

-- One row per (charged claim, half-year) holding some of the invoice's late days: from the day
-- after its due date to as_of, cut at 1 January and 1 July, each part at that half-year's
-- reference rate (temp table ladder_rates) plus the margin.
create or replace temp macro ladder_charge_periods(claims_rel, arg_as_of, arg_margin_points, arg_days_in_year) as table
with

claims as (
    select * from query_table(claims_rel) where charged
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
        least(cast(arg_as_of as date), rates.valid_to) as period_end,
        rates.reference_rate,
        cast(rates.reference_rate + arg_margin_points as decimal(9,4)) as annual_rate,
        claims.open_amount
    from claims
    join rates
        on rates.valid_from <= cast(arg_as_of as date)
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
    cast((2 * numerator_e6 * 100 + arg_days_in_year) // (2 * arg_days_in_year) as decimal(38,0))
        * cast(0.0000000001 as decimal(11,10)) as interest
from numerators;

-- One row per (charged claim): the interest of all its late days (`periods_rel`, from
-- ladder_charge_periods) rounded half-up to the cent, and the fixed recovery indemnity.
create or replace temp macro ladder_charges(claims_rel, periods_rel, arg_days_in_year, arg_indemnity, arg_indemnity_currency) as table
with

claims as (
    select * from query_table(claims_rel) where charged
),

periods as (
    select * from query_table(periods_rel)
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
        cast((2 * coalesce(interest.numerator_e6, 0) + arg_days_in_year * 1000000) // (2 * arg_days_in_year * 1000000) as decimal(38,0))
        * cast(0.01 as decimal(3,2))
        as decimal(38,2)
    ) as interest_amount,
    cast(arg_indemnity as decimal(18,2)) as indemnity_amount,
    arg_indemnity_currency as indemnity_currency
from claims
left join interest using (action_id, invoice_id);
