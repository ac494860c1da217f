-- model: stg_invoices
-- grain: one row per valid invoice or credit note
-- materialized: table
select invoice_id, customer_id, kind, issue_date, due_date, amount, currency
from stg_invoices_checked
where reject_reason is null
