-- model: int_metrics_open_invoices
-- grain: one row per (at_date, invoice) with something left after direct payments on the
--        date-stamped source, with its open amount: the nightly rules of int_open_invoices
--        (sql/macros/allocation.sql)
-- materialized: temp
-- macros: allocation
-- depends: int_metrics_direct_settlement, int_metrics_credit_pool
select * from allocation_open_invoices('int_metrics_direct_settlement', 'int_metrics_credit_pool')
