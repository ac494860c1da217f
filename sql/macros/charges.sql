-- The late-payment charges (Code de commerce L441-10, D441-5), once, as table macros over the claims
-- they charge (named by string: query_table). The ladder runs them on its claims of the day
-- (int_ladder_charge_periods, int_ladder_charges on int_ladder_claims); dispatch runs the very
-- same rules on the send date's claims (send_charge_periods, send_charges on send_claims).
-- Loaded by the runner on the connection of a model whose header says `-- macros: charges`.

-- The claims carry their charge rule (the ladder's: ladder_defs): charge_kind (commercial: the
-- reference rate, temp table ladder_rates, plus margin_points; legal_rate: the legal interest rate,
-- temp table ladder_legal_rates), interest_from (the first day of interest: the day after the due
-- date, or for legal_rate the day after the formal notice), indemnity and indemnity_currency.
--
-- One row per (charged claim, period of its interest days at one base and one rate): the days run
-- from interest_from to as_of, cut at 1 January and 1 July (each part at that half-year's rate) and
-- at the date of each payment naming the invoice (interest runs on what is owed each day: a
-- partial payment lowers the base from its date). The base of a period is the claim's open amount
-- at as_of plus the direct payments (stg_payments) dated after the period's start, up to as_of;
-- credits of the unit's pool (credit notes, payments on account) count from the first late day.
-- A claim whose interest has not started by as_of (a legal-rate formal notice: interest runs from
-- the notice) has one period of 0 days at the rate of as_of's half-year: the rate it states.
create or replace temp macro ladder_charge_periods(claims_rel, arg_as_of, arg_days_in_year) as table
with

claims as (
    select * from query_table(claims_rel) where charged
),

rates as (
    select 'commercial' as charge_kind, half_year, valid_from, valid_to, reference_rate from ladder_rates
    union all
    select 'legal_rate' as charge_kind, half_year, valid_from, valid_to, legal_rate from ladder_legal_rates
),

payments as (
    -- payments naming a charged invoice, received from its first day of interest to as_of
    select claimed.action_id, stg_payments.invoice_id, stg_payments.paid_date, stg_payments.amount
    from stg_payments
    join (select distinct action_id, invoice_id, interest_from from claims) as claimed using (invoice_id)
    where stg_payments.paid_date >= claimed.interest_from
      and stg_payments.paid_date <= cast(arg_as_of as date)
),

cuts as (
    -- the days a period starts: the first day of interest, each half-year start and each payment date
    select action_id, invoice_id, interest_from as period_start
    from claims
    union
    select claims.action_id, claims.invoice_id, rates.valid_from
    from claims
    join rates
        on rates.charge_kind = claims.charge_kind
       and rates.valid_from > claims.interest_from
       and rates.valid_from <= cast(arg_as_of as date)
    union
    select claims.action_id, claims.invoice_id, payments.paid_date
    from claims
    join payments using (action_id, invoice_id)
),

bounded as (
    select
        cuts.*,
        coalesce(
            lead(period_start) over (partition by action_id, invoice_id order by period_start) - 1,
            cast(arg_as_of as date)
        ) as period_end
    from cuts
),

based as (
    -- what was owed on each day of the period: the open amount at as_of plus what was paid later
    select
        bounded.action_id,
        bounded.invoice_id,
        bounded.period_start,
        bounded.period_end,
        cast(claims.open_amount + coalesce(sum(payments.amount), 0) as decimal(38,2)) as open_amount
    from bounded
    join claims using (action_id, invoice_id)
    left join payments
        on payments.action_id = bounded.action_id
       and payments.invoice_id = bounded.invoice_id
       and payments.paid_date > bounded.period_start
    group by bounded.action_id, bounded.invoice_id, bounded.period_start, bounded.period_end, claims.open_amount
),

periods as (
    select
        based.action_id,
        based.invoice_id,
        rates.half_year,
        based.period_start,
        -- a half-year without a rate ends the period at its last covered day (never reached: the
        -- ladder and dispatch check the rates the late days need first)
        least(based.period_end, rates.valid_to) as period_end,
        rates.reference_rate,
        cast(rates.reference_rate + claims.margin_points as decimal(9,4)) as annual_rate,
        based.open_amount
    from based
    join claims using (action_id, invoice_id)
    join rates
        on rates.charge_kind = claims.charge_kind
       -- interest not started by as_of: the rate of as_of's half-year, for 0 days
       and least(based.period_start, cast(arg_as_of as date)) between rates.valid_from and rates.valid_to
),

measured as (
    select
        *,
        greatest(datediff('day', period_start, period_end) + 1, 0) as days
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
create or replace temp macro ladder_charges(claims_rel, periods_rel, arg_days_in_year) as table
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
    cast(claims.indemnity as decimal(18,2)) as indemnity_amount,
    claims.indemnity_currency
from claims
left join interest using (action_id, invoice_id);
