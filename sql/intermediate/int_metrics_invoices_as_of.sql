-- model: int_metrics_invoices_as_of
-- grain: one row per (at_date, invoice) for each unit of int_metrics_pit_units: the unit's
--        invoices and credit notes issued on or before at_date
-- materialized: temp
--
-- This is int_invoices_as_of for many dates at once. The date is written in front of the
-- customer and invoice ids ('2026-03-01|C042'), so that the allocation rules
-- (sql/macros/allocation.sql: int_metrics_direct_settlement, int_metrics_credit_pool,
-- int_metrics_open_invoices, int_metrics_unapplied_credit), run unchanged on top of it,
-- allocate each (date, unit) on its own: the very same allocation rules as the nightly aging,
-- at every date a metric needs (docs/metrics.md).
select
    invoices.* replace (
        pit.id_prefix || invoices.invoice_id as invoice_id,
        pit.id_prefix || invoices.customer_id as customer_id
    )
from int_metrics_pit_units as pit
join stg_invoices as invoices
    on invoices.customer_id = pit.customer_id
   and invoices.currency = pit.currency
   and invoices.issue_date <= pit.at_date
