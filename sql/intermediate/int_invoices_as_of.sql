-- model: int_invoices_as_of
-- grain: one row per valid invoice or credit note issued on or before as_of
-- materialized: temp_view
select *
from stg_invoices
where issue_date <= $as_of
