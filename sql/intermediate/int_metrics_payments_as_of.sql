-- model: int_metrics_payments_as_of
-- grain: one row per (at_date, payment) for each unit of int_metrics_pit_units: the unit's
--        payments received on or before at_date (ids prefixed with the date, as in
--        int_metrics_invoices_as_of)
-- materialized: temp
select
    payments.* replace (
        pit.id_prefix || payments.payment_id as payment_id,
        pit.id_prefix || payments.customer_id as customer_id,
        pit.id_prefix || payments.invoice_id as invoice_id  -- null stays null: a payment on account
    )
from int_metrics_pit_units as pit
join stg_payments as payments
    on payments.customer_id = pit.customer_id
   and payments.currency = pit.currency
   and payments.paid_date <= pit.at_date
