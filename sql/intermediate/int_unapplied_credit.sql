-- model: int_unapplied_credit
-- grain: one row per unit whose credit pool exceeds all its remaining invoices at as_of
-- materialized: temp
with

pools as (
    select * from int_credit_pool
),

remaining as (
    select customer_id, currency, sum(remaining) as remaining
    from int_direct_settlement
    group by customer_id, currency
)

select
    pools.customer_id,
    pools.currency,
    cast(pools.pool - coalesce(remaining.remaining, 0) as decimal(38,2)) as unapplied_credit
from pools
left join remaining using (customer_id, currency)
where pools.pool > coalesce(remaining.remaining, 0)
