-- model: int_metrics_allocated
-- grain: one row per (at_date, invoice) open at at_date after the date-stamped allocation
--        (int_metrics_open_invoices: the nightly rules on the date-stamped source), for
--        the (at_date, unit) pairs of int_metrics_pit_units not read from a snapshot; the date
--        split back from the ids
-- materialized: temp
select
    cast(left(customer_id, 10) as date) as at_date,
    substr(customer_id, 12) as customer_id,
    currency,
    substr(invoice_id, 12) as invoice_id,
    issue_date,
    due_date,
    open_amount
from int_metrics_open_invoices
where open_amount > 0
