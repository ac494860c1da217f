-- model: int_metrics_payments_as_of
-- grain: one row per (at_date, payment) for each unit of int_metrics_pit_units: the unit's
--        payments received on or before at_date (ids prefixed with the date, as in
--        int_metrics_invoices_as_of)
-- materialized: temp
select
    payments.* replace (
        strftime(pit.at_date, '%Y-%m-%d') || '|' || payments.payment_id as payment_id,
        strftime(pit.at_date, '%Y-%m-%d') || '|' || payments.customer_id as customer_id,
        case when payments.invoice_id is not null
             then strftime(pit.at_date, '%Y-%m-%d') || '|' || payments.invoice_id end as invoice_id
    )
from int_metrics_pit_units as pit
join stg_payments as payments
    on payments.customer_id = pit.customer_id
   and payments.currency = pit.currency
   and payments.paid_date <= pit.at_date
