-- model: int_metrics_credit_at
-- grain: one row per (at_date, unit) whose credit pool exceeds its remaining invoices at at_date
-- materialized: temp
select
    cast(left(customer_id, 10) as date) as at_date,
    substr(customer_id, 12) as customer_id,
    currency,
    unapplied_credit
from int_unapplied_credit
