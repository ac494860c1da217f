-- model: int_active_holds
-- grain: one row per hold active on as_of: the source's holds (start_date <= as_of <= end_date,
--        or no end; origin 'source', every currency of the customer) and those of recorded
--        outcomes (int_outcome_holds; origin 'outcome', one currency)
-- materialized: temp
with

source_holds as (
    select
        hold_id, customer_id, invoice_id, cast(null as varchar) as currency, kind, start_date, end_date,
        'source' as origin
    from stg_holds
    where start_date <= $as_of
      and (end_date is null or end_date >= $as_of)
),

outcome_holds as (
    select hold_id, customer_id, invoice_id, currency, kind, start_date, end_date, 'outcome' as origin
    from int_outcome_holds
),

holds as (
    select * from source_holds
    union all
    select * from outcome_holds
)

select
    *,
    -- when several holds apply, the strongest is reported
    case kind when 'legal' then 1 when 'dispute' then 2 when 'payment_plan' then 3
              when 'promise' then 4 else 5 end as kind_priority
from holds
