-- model: int_direct_settlement
-- grain: one row per invoice (kind 'invoice') issued on or before as_of, with what the payments
--        naming it settle (up to its amount) and the excess that joins the unit's credit pool
-- materialized: temp
with

invoices as (
    select * from int_invoices_as_of where kind = 'invoice'
),

direct_payments as (
    select invoice_id, sum(amount) as paid
    from int_payments_as_of
    where invoice_id is not null
    group by invoice_id
),

settled as (
    select
        invoices.*,
        coalesce(direct_payments.paid, 0) as direct_paid,
        least(invoices.amount, coalesce(direct_payments.paid, 0)) as direct_applied
    from invoices
    left join direct_payments using (invoice_id)
)

select
    *,
    cast(amount - direct_applied as decimal(18,2)) as remaining,
    cast(direct_paid - direct_applied as decimal(18,2)) as excess
from settled
