-- model: int_metrics_credit_at
-- grain: one row per unit whose credit pool exceeds its remaining invoices at as_of: from the
--        aged_balance of as_of (bucket unapplied_credit, a negative amount) when the caller wrote
--        it from this same staging (metrics_snapshot_dates), else from the date-stamped
--        allocation (int_metrics_unapplied_credit)
-- materialized: temp
with

snapshot_dates as (
    select at_date from metrics_snapshot_dates
),

allocated as (
    select
        cast(left(customer_id, 10) as date) as at_date,
        substr(customer_id, 12) as customer_id,
        currency,
        unapplied_credit
    from int_metrics_unapplied_credit
),

from_snapshot as (
    select aged.as_of as at_date, aged.customer_id, aged.currency, -aged.amount as unapplied_credit
    from aged_balance as aged
    where aged.as_of = $as_of
      and aged.as_of in (select at_date from snapshot_dates)
      and aged.bucket = 'unapplied_credit'
)

select * from allocated where at_date = $as_of
union all
select * from from_snapshot
