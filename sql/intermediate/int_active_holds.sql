-- model: int_active_holds
-- grain: one row per hold active on as_of (start_date <= as_of <= end_date, or no end)
-- materialized: temp
select
    *,
    -- when several holds apply, the strongest is reported
    case kind when 'legal' then 1 when 'dispute' then 2 when 'payment_plan' then 3
              when 'promise' then 4 else 5 end as kind_priority
from stg_holds
where start_date <= $as_of
  and (end_date is null or end_date >= $as_of)
