-- model: stg_payments
-- grain: one row per valid payment
-- materialized: table
select payment_id, customer_id, invoice_id, paid_date, amount, currency
from stg_payments_checked
where reject_reason is null
