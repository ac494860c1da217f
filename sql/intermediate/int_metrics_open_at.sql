-- model: int_metrics_open_at
-- grain: one row per (at_date, invoice) open at at_date (open amount > 0 after payments and
--        credits, allocated as of at_date), for every unit on as_of, as_of − 30 and as_of − 90,
--        with its days past due and aging bucket at at_date
-- materialized: temp
--
-- Two sources, one allocation: a date whose invoice_snapshot the caller wrote from this same
-- staging (metrics_snapshot_dates) is read there, as that aging wrote it; any other date comes
-- from the date-stamped allocation (int_metrics_allocated).
with

balance_dates as (
    select unnest([cast($as_of as date), cast($as_of as date) - 30, cast($as_of as date) - 90]) as at_date
),

snapshot_dates as (
    select at_date from metrics_snapshot_dates
),

buckets as (
    select * from policy_buckets
),

allocated as (
    select
        allocated.*,
        datediff('day', allocated.due_date, allocated.at_date) as days_past_due
    from int_metrics_allocated as allocated
    where allocated.at_date in (select at_date from balance_dates)
),

allocated_bucketed as (
    select allocated.*, buckets.name as bucket, buckets.position as bucket_position
    from allocated
    join buckets
        on (buckets.min_days is null or allocated.days_past_due > buckets.min_days)
       and (buckets.max_days is null or allocated.days_past_due <= buckets.max_days)
),

from_snapshot as (
    select
        snapshot.as_of as at_date,
        snapshot.customer_id,
        snapshot.currency,
        snapshot.invoice_id,
        snapshot.issue_date,
        snapshot.due_date,
        snapshot.open_amount,
        cast(snapshot.days_past_due as bigint) as days_past_due,
        snapshot.bucket,
        buckets.position as bucket_position
    from invoice_snapshot as snapshot
    join buckets on buckets.name = snapshot.bucket
    where snapshot.as_of in (select at_date from balance_dates)
      and snapshot.as_of in (select at_date from snapshot_dates)
)

select * from allocated_bucketed
union all
select * from from_snapshot
