-- report: forecast_accuracy
-- grain: one row per stored forecast (cash_forecast of an earlier date F, currency, horizon h)
--        whose window (F, F + h] has passed by as_of (F + h <= as_of), F within the 180 days
--        before as_of: what was expected and the cash actually collected in the window (every
--        payment of the currency received in (F, F + h], as collected_30d counts it)
--        (docs/metrics.md "Expected collections", accuracy)
-- used by: tasks/report/data.py (the section "Expected collections", the workbook)
with

forecasts as (
    select *
    from cash_forecast
    where as_of + horizon_days <= cast($as_of as date)
      and as_of > cast($as_of as date) - 180
),

-- the cash of each day first: a few hundred rows to join, whatever the number of payments
payments as (
    select currency, paid_date, sum(amount) as amount
    from stg_payments
    where paid_date > cast($as_of as date) - 180 and paid_date <= cast($as_of as date)
    group by currency, paid_date
)

select
    forecasts.as_of as forecast_date,
    forecasts.currency,
    forecasts.horizon_days,
    forecasts.expected_amount,
    cast(coalesce(sum(payments.amount), 0) as decimal(38,2)) as collected_amount
from forecasts
left join payments
    on payments.currency = forecasts.currency
   and payments.paid_date > forecasts.as_of
   and payments.paid_date <= forecasts.as_of + forecasts.horizon_days
group by forecasts.as_of, forecasts.currency, forecasts.horizon_days, forecasts.expected_amount
order by forecasts.currency, forecasts.horizon_days, forecasts.as_of
