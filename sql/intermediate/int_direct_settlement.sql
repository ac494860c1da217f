-- model: int_direct_settlement
-- grain: one row per invoice (kind 'invoice') issued on or before as_of that is not settled
--        exactly by the payments naming it: what they settle (up to its amount), what remains,
--        and the excess that joins the unit's credit pool. An invoice those payments settle
--        exactly (most of them) has nothing left to allocate and no row.
-- materialized: temp
with

invoices as (
    select invoice_id, customer_id, currency, kind, issue_date, due_date, amount
    from int_invoices_as_of
    where kind = 'invoice'
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
    cast(direct_paid - direct_applied as decimal(38,2)) as excess
from settled
where direct_applied < amount or direct_paid > direct_applied
