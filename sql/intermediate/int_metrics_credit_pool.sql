-- model: int_metrics_credit_pool
-- grain: one row per (at_date, unit) with credit on the date-stamped source: the nightly rules
--        of int_credit_pool (sql/macros/allocation.sql)
-- materialized: temp
-- macros: allocation
-- depends: int_metrics_invoices_as_of, int_metrics_payments_as_of, int_metrics_direct_settlement
select * from allocation_credit_pool('int_metrics_invoices_as_of', 'int_metrics_payments_as_of', 'int_metrics_direct_settlement')
