-- model: int_payments_as_of
-- grain: one row per valid payment received on or before as_of
-- materialized: temp_view
select *
from stg_payments
where paid_date <= $as_of
