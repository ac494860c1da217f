-- model: int_credit_pool
-- grain: one row per unit (customer_id, currency) with credit: credit notes, payments on
--        account, payments naming an invoice not yet issued at as_of, and direct excesses
-- materialized: temp
with

credit_notes as (
    select customer_id, currency, amount
    from int_invoices_as_of
    where kind = 'credit_note'
),

on_account as (
    -- no invoice named, or the invoice named is issued after as_of (the payment waits in the pool)
    select payments.customer_id, payments.currency, payments.amount
    from int_payments_as_of as payments
    left join int_invoices_as_of as invoices using (invoice_id)
    where payments.invoice_id is null or invoices.invoice_id is null
),

excesses as (
    select customer_id, currency, excess as amount
    from int_direct_settlement
    where excess > 0
),

credits as (
    select * from credit_notes
    union all select * from on_account
    union all select * from excesses
)

select customer_id, currency, cast(sum(amount) as decimal(38,2)) as pool
from credits
group by customer_id, currency
