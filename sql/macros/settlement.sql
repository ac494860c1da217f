-- When an invoice was paid, once, as a table macro over its inputs (named by string: query_table):
-- the debtor profile (sql/marts/debtor_profile.sql: days late of the invoices paid in the last 12
-- months) and the statements of late-payment charges (sql/intermediate/int_late_charge_candidates.sql:
-- the invoices paid late in a statement's window) read the same rule.
-- Loaded by the runner on the connection of a model whose header says `-- macros: settlement`.

-- One row per invoice (kind 'invoice') of `invoices_rel` that the payments of `payments_rel` naming
-- it paid in full, on a day of [paid_from, paid_to] (either bound null: open): the day their running
-- total, in paid_date then payment_id order, reached its amount, and what they paid in all. Only the
-- payments naming an invoice settle it here: a payment on account or a credit note settles invoices
-- through the unit's credit pool (sql/macros/allocation.sql), which gives an open amount at a date
-- but no settlement date.
create or replace temp macro invoice_settlements(invoices_rel, payments_rel, paid_from, paid_to) as table
with

invoices as (
    select invoice_id, customer_id, currency, due_date, amount
    from query_table(invoices_rel)
    where kind = 'invoice'
),

payments as (
    select payment_id, invoice_id, paid_date, amount
    from query_table(payments_rel)
    where invoice_id is not null
),

paid_in_window as (
    -- the only invoices the window's payments can have settled
    select distinct invoice_id
    from payments
    where (paid_from is null or paid_date >= paid_from)
      and (paid_to is null or paid_date <= paid_to)
),

cumulated as (
    select
        payments.invoice_id,
        payments.paid_date,
        invoices.amount as invoice_amount,
        sum(payments.amount) over (
            partition by payments.invoice_id
            order by payments.paid_date, payments.payment_id
            rows between unbounded preceding and current row
        ) as paid_so_far
    from payments
    join invoices using (invoice_id)
    where payments.invoice_id in (select invoice_id from paid_in_window)
)

select
    invoice_id,
    min(paid_date) filter (where paid_so_far >= invoice_amount) as paid_on,
    max(paid_so_far) as paid
from cumulated
group by invoice_id
having min(paid_date) filter (where paid_so_far >= invoice_amount) is not null
   and (paid_from is null or min(paid_date) filter (where paid_so_far >= invoice_amount) >= paid_from)
   and (paid_to is null or min(paid_date) filter (where paid_so_far >= invoice_amount) <= paid_to);
