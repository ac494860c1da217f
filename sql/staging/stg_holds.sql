-- model: stg_holds
-- grain: one row per valid hold
-- materialized: table
select hold_id, customer_id, invoice_id, kind, start_date, end_date
from stg_holds_checked
where reject_reason is null
