-- model: int_metrics_open_at
-- grain: one row per (at_date, invoice) open at at_date (open amount > 0 after payments and
--        credits, allocated as of at_date), with its days past due and aging bucket at at_date
-- materialized: temp
with

open_invoices as (
    select
        cast(left(customer_id, 10) as date) as at_date,
        substr(customer_id, 12) as customer_id,
        currency,
        substr(invoice_id, 12) as invoice_id,
        issue_date,
        due_date,
        open_amount
    from int_open_invoices
    where open_amount > 0
),

aged as (
    select *, datediff('day', due_date, at_date) as days_past_due
    from open_invoices
)

select aged.*, buckets.name as bucket, buckets.position as bucket_position
from aged
join policy_buckets as buckets
    on (buckets.min_days is null or aged.days_past_due > buckets.min_days)
   and (buckets.max_days is null or aged.days_past_due <= buckets.max_days)
