-- model: expected_payments
-- grain: one row per invoice open at as_of (int_metrics_open_at): when it is expected to be paid,
--        from its debtor's own delays (debtor_profile of as_of: avg_days_late), or, for a `new`
--        debtor, from the currency's (the amount-weighted average days late of every invoice paid
--        in the last 12 months in that currency); an invoice already past that date is expected
--        the next day (docs/metrics.md "Expected collections")
-- materialized: incremental_as_of
with

open_at as (
    select customer_id, currency, invoice_id, due_date, open_amount
    from int_metrics_open_at
    where at_date = cast($as_of as date)
),

profiles as (
    select * from debtor_profile where as_of = cast($as_of as date)
),

portfolio as (
    -- Σ(avg days late × paid amount) / Σ paid amount per currency, whole days half-up, in integers
    select
        currency,
        (2 * sum(cast(avg_days_late * 100 as hugeint) * cast(paid_amount * 100 as hugeint))
            + 100 * sum(cast(paid_amount * 100 as hugeint)))
            // (200 * sum(cast(paid_amount * 100 as hugeint))) as delay_days
    from profiles
    where paid_invoices > 0
    group by currency
),

delays as (
    select
        open_at.*,
        case when profiles.risk_class <> 'new' then 'debtor' else 'currency' end as basis,
        coalesce(
            case when profiles.risk_class <> 'new'
                 then cast((2 * cast(profiles.avg_days_late * 100 as hugeint) + 100) // 200 as integer) end,
            cast(portfolio.delay_days as integer),
            0
        ) as expected_days_late
    from open_at
    left join profiles using (customer_id, currency)
    left join portfolio using (currency)
)

select
    cast($as_of as date) as as_of,
    invoice_id,
    customer_id,
    currency,
    due_date,
    cast(open_amount as decimal(18,2)) as open_amount,
    basis,
    expected_days_late,
    greatest(due_date + expected_days_late, cast($as_of as date) + 1) as expected_date
from delays
