-- model: int_late_charge_claims
-- grain: one row per invoice to put on a statement of late-payment charges made on as_of: an
--        invoice of a charged segment fully paid late (the payments naming it reached its amount
--        after its due date) within the statement's period [$period_start, $period_end], not yet
--        charged on a statement, and with late days not already stated by a sent formal notice or
--        litigation action (action_charges). Shaped as the charge macros' claims
--        (sql/macros/charges.sql): action_id = invoice_id, charged, open_amount, days_past_due.
-- materialized: temp
-- depends: int_invoices_as_of, int_payments_as_of
--
-- Only the payments naming an invoice settle it here: a payment on account or a credit note
-- settles invoices through the unit's credit pool, whose allocation (sql/macros/allocation.sql)
-- gives an open amount at a date but no settlement date — such invoices are not charged.
with

invoices as (
    select invoice_id, customer_id, currency, due_date, amount
    from int_invoices_as_of
    where kind = 'invoice'
),

payments as (
    select payment_id, invoice_id, paid_date, amount
    from int_payments_as_of
    where invoice_id is not null
),

customers as (
    select customer_id, segment
    from stg_customers
),

paid_in_period as (
    -- the only invoices the period's payments can have settled
    select distinct invoice_id
    from payments
    where paid_date between cast($period_start as date) and cast($period_end as date)
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
    where payments.invoice_id in (select invoice_id from paid_in_period)
),

settled as (
    -- an invoice is paid on the date the payments naming it reach its amount
    select invoice_id, min(paid_date) as paid_on
    from cumulated
    where paid_so_far >= invoice_amount
    group by invoice_id
),

paid_total as (
    select invoice_id, sum(amount) as paid
    from payments
    where invoice_id in (select invoice_id from paid_in_period)
    group by invoice_id
),

stated as (
    -- the charges a sent formal notice or litigation action already claimed for the invoice: the
    -- indemnity (once per invoice), and the interest up to the day whose figures it stated
    select
        charges.invoice_id,
        max(coalesce(sent.figures_as_of, actions.as_of)) as stated_through
    from action_charges as charges
    join dunning_actions as actions using (action_id)
    join deliveries as sent
        on sent.action_id = charges.action_id
       and sent.status = 'sent'
    group by charges.invoice_id
),

already_charged as (
    -- a live run ignores what a replay (backfill) simulated; a replay ignores nothing
    select late_charges.invoice_id
    from late_charges
    join late_charge_statements as statements using (statement_id)
    where statements.mode = 'live' or $mode = 'replay'
),

candidates as (
    select
        invoices.*,
        settled.paid_on,
        paid_total.paid,
        stated.stated_through
    from invoices
    join settled using (invoice_id)
    join paid_total using (invoice_id)
    join customers using (customer_id)
    left join stated using (invoice_id)
    where settled.paid_on > invoices.due_date
      and settled.paid_on between cast($period_start as date) and cast($period_end as date)
      and list_contains($charge_segments, customers.segment)
      and invoices.invoice_id not in (select invoice_id from already_charged)
      -- a notice whose figures reached the payment date left nothing to state
      and (stated.stated_through is null or stated.stated_through < settled.paid_on)
)

select
    invoice_id as action_id,
    invoice_id,
    customer_id,
    currency,
    -- the day before the first day charged: the macros count late days from the day after it
    greatest(due_date, coalesce(stated_through, due_date)) as due_date,
    due_date as invoice_due_date,
    paid_on,
    amount,
    -- what is owed at as_of: nothing, or less than nothing when overpaid (the charge macros add back
    -- the payments after each period's start: the base is what was owed on each day)
    cast(amount - paid as decimal(18,2)) as open_amount,
    datediff('day', due_date, paid_on) as days_past_due,
    stated_through is null as owes_indemnity,
    true as charged
from candidates
