-- model: cash_forecast
-- grain: one row per (currency, horizon) on as_of, horizons 7, 30, 60 and 90 days: the open
--        amount of the invoices expected to be paid within the horizon (expected_payments of
--        as_of, expected_date ≤ as_of + horizon; docs/metrics.md "Expected collections")
-- materialized: incremental_as_of
with

expected as (
    select * from expected_payments where as_of = cast($as_of as date)
),

horizons as (
    select unnest([7, 30, 60, 90]) as horizon_days
),

currencies as (
    select distinct currency from expected
)

select
    cast($as_of as date) as as_of,
    currencies.currency,
    horizons.horizon_days,
    cast(coalesce(sum(expected.open_amount), 0) as decimal(38,2)) as expected_amount,
    count(expected.invoice_id) as invoice_count
from currencies
cross join horizons
left join expected
    on expected.currency = currencies.currency
   and expected.expected_date <= cast($as_of as date) + horizons.horizon_days
group by currencies.currency, horizons.horizon_days
