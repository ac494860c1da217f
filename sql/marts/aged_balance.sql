-- model: aged_balance
-- grain: one row per (customer_id, currency, bucket) with a non-zero amount at as_of;
--        unapplied credit is its own bucket, as a negative amount
-- materialized: incremental_as_of
with

snapshot as (
    select * from invoice_snapshot where as_of = $as_of
),

unapplied as (
    select * from int_unapplied_credit
),

by_bucket as (
    select customer_id, currency, bucket, sum(open_amount) as amount, count(*) as invoice_count
    from snapshot
    group by customer_id, currency, bucket
),

credit as (
    select customer_id, currency, 'unapplied_credit' as bucket, -unapplied_credit as amount, 0 as invoice_count
    from unapplied
)

select $as_of as as_of, customer_id, currency, bucket, cast(amount as decimal(38,2)) as amount, invoice_count
from (select * from by_bucket union all select * from credit)
where amount <> 0
