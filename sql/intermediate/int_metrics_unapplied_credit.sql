-- model: int_metrics_unapplied_credit
-- grain: one row per (at_date, unit) whose credit pool exceeds all its remaining invoices on the
--        date-stamped source: the nightly rules of int_unapplied_credit (sql/macros/allocation.sql)
-- materialized: temp
-- macros: allocation
-- depends: int_metrics_credit_pool, int_metrics_direct_settlement
select * from allocation_unapplied_credit('int_metrics_credit_pool', 'int_metrics_direct_settlement')
