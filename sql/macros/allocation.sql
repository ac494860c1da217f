-- The allocation rules of contract §2, once, as table macros over their inputs (named by string:
-- query_table). The nightly aging runs them on the source as of the run date
-- (int_direct_settlement, int_credit_pool, int_open_invoices, int_unapplied_credit, on
-- int_invoices_as_of / int_payments_as_of); the metrics run the very same rules on the
-- date-stamped source (int_metrics_direct_settlement, … on int_metrics_invoices_as_of /
-- int_metrics_payments_as_of, whose ids carry their date: docs/metrics.md). No second allocation.
-- Loaded by the runner on the connection of a model whose header says `-- macros: allocation`.

-- One row per invoice (kind 'invoice') of `invoices` not settled exactly by the payments naming
-- it: what they settle (up to its amount), what remains, and the excess that joins the unit's
-- credit pool. An invoice those payments settle exactly (most of them) has nothing left to
-- allocate and no row.
create or replace temp macro allocation_direct_settlement(invoices_rel, payments_rel) as table
with

invoices as (
    select invoice_id, customer_id, currency, kind, issue_date, due_date, amount
    from query_table(invoices_rel)
    where kind = 'invoice'
),

direct_payments as (
    select invoice_id, sum(amount) as paid
    from query_table(payments_rel)
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
where direct_applied < amount or direct_paid > direct_applied;

-- One row per unit (customer_id, currency) with credit: credit notes, payments on account,
-- payments naming an invoice not in `invoices` (not yet issued: the payment waits in the pool),
-- and the direct excesses of `settlement`.
create or replace temp macro allocation_credit_pool(invoices_rel, payments_rel, settlement_rel) as table
with

credit_notes as (
    select customer_id, currency, amount
    from query_table(invoices_rel)
    where kind = 'credit_note'
),

on_account as (
    -- no invoice named, or the invoice named is issued after as_of (the payment waits in the pool)
    select payments.customer_id, payments.currency, payments.amount
    from query_table(payments_rel) as payments
    left join query_table(invoices_rel) as invoices using (invoice_id)
    where payments.invoice_id is null or invoices.invoice_id is null
),

excesses as (
    select customer_id, currency, excess as amount
    from query_table(settlement_rel)
    where excess > 0
),

credits as (
    select * from credit_notes
    union all select * from on_account
    union all select * from excesses
)

select customer_id, currency, cast(sum(amount) as decimal(38,2)) as pool
from credits
group by customer_id, currency;

-- One row per invoice of `settlement` with something left after direct payments, with its open
-- amount once the unit's credit pool (`pool`) has settled the unit's invoices oldest first,
-- ordered by (due_date, issue_date, invoice_id).
create or replace temp macro allocation_open_invoices(settlement_rel, pool_rel) as table
with

remaining as (
    select * from query_table(settlement_rel) where remaining > 0
),

pools as (
    select * from query_table(pool_rel)
),

ordered as (
    select
        remaining.*,
        coalesce(pools.pool, 0) as pool,
        sum(remaining.remaining) over (
            partition by remaining.customer_id, remaining.currency
            order by remaining.due_date, remaining.issue_date, remaining.invoice_id
            rows between unbounded preceding and current row
        ) - remaining.remaining as remaining_before
    from remaining
    left join pools using (customer_id, currency)
)

select
    *,
    cast(remaining - least(remaining, greatest(0, pool - remaining_before)) as decimal(18,2)) as open_amount
from ordered;

-- One row per unit whose credit pool (`pool`) exceeds all its remaining invoices (`settlement`).
create or replace temp macro allocation_unapplied_credit(pool_rel, settlement_rel) as table
with

pools as (
    select * from query_table(pool_rel)
),

remaining as (
    select customer_id, currency, sum(remaining) as remaining
    from query_table(settlement_rel)
    group by customer_id, currency
)

select
    pools.customer_id,
    pools.currency,
    cast(pools.pool - coalesce(remaining.remaining, 0) as decimal(38,2)) as unapplied_credit
from pools
left join remaining using (customer_id, currency)
where pools.pool > coalesce(remaining.remaining, 0);
