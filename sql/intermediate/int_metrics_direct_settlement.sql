-- model: int_metrics_direct_settlement
-- grain: one row per (at_date, invoice) of the date-stamped source (int_metrics_invoices_as_of,
--        ids prefixed with their date) not settled exactly by the payments naming it: the
--        nightly rules of int_direct_settlement (sql/macros/allocation.sql), at every date a
--        metric needs
-- materialized: temp
-- macros: allocation
-- depends: int_metrics_invoices_as_of, int_metrics_payments_as_of
select * from allocation_direct_settlement('int_metrics_invoices_as_of', 'int_metrics_payments_as_of')
