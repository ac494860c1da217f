-- model: int_ladder_invoices
-- grain: one row per invoice open at as_of (from invoice_snapshot), with what the ladder reads:
--        whether an invoice-level hold names it and whether it is overdue (whether it is dunnable
--        depends on the unit's ladder: int_ladder_units)
-- materialized: temp
with

snapshot as (
    select * from invoice_snapshot where as_of = $as_of
),

flagged as (
    select
        invoice_id,
        customer_id,
        currency,
        issue_date,
        due_date,
        open_amount,
        days_past_due,
        -- a customer-level hold holds the unit, not the invoice: only invoice-level holds count here
        coalesce(hold_scope = 'invoice', false) as invoice_held,
        hold_kind
    from snapshot
)

select
    *,
    not invoice_held and days_past_due > 0 as unheld_overdue
from flagged
