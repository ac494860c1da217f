-- model: int_open_invoices
-- grain: one row per invoice with something left after direct payments, with its open amount
--        once the unit's credit pool has settled the unit's invoices oldest first,
--        ordered by (due_date, issue_date, invoice_id)
-- materialized: temp
with

remaining as (
    select * from int_direct_settlement where remaining > 0
),

pools as (
    select * from int_credit_pool
),

ordered as (
    select
        remaining.*,
        coalesce(pools.pool, 0) as pool,
        sum(remaining.remaining) over (
            partition by remaining.customer_id, remaining.currency
            order by remaining.due_date, remaining.issue_date, remaining.invoice_id
            rows between unbounded preceding and current row
        ) - remaining.remaining as remaining_before
    from remaining
    left join pools using (customer_id, currency)
)

select
    *,
    cast(remaining - least(remaining, greatest(0, pool - remaining_before)) as decimal(18,2)) as open_amount
from ordered
