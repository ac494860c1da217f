-- Everything a message says, one row per delivery of the batch (temp table dispatch_batch):
-- the customer's contacts, the action (stage, amount, late-payment charges as the ladder
-- computed them) and the invoices it claims, from invoice_snapshot at the action's as_of.
-- dispatch_charges is a temp view over the ladder's per-invoice charges (empty when absent).
with

batch as (
    select delivery_id, ord from dispatch_batch
),

actions as (
    select a.*
    from dunning_actions a
    where a.action_id in (select d.action_id from deliveries d join batch using (delivery_id))
),

claimed as (
    select action_id, as_of, unnest(invoice_ids) as invoice_id from actions
),

invoices as (
    select
        claimed.action_id,
        list(struct_pack(
            invoice_id := s.invoice_id,
            kind := s.kind,
            issue_date := s.issue_date,
            due_date := s.due_date,
            amount := s.amount,
            open_amount := s.open_amount,
            days_past_due := s.days_past_due,
            interest := ch.interest_amount,
            indemnity := ch.indemnity_amount
        ) order by s.due_date, s.invoice_id) as invoices
    from claimed
    join invoice_snapshot s on s.as_of = claimed.as_of and s.invoice_id = claimed.invoice_id
    left join dispatch_charges ch on ch.action_id = claimed.action_id and ch.invoice_id = claimed.invoice_id
    group by claimed.action_id
)

select
    d.delivery_id,
    d.action_id,
    d.channel,
    d.status,
    d.attempts,
    a.as_of as action_as_of,
    a.stage,
    a.episode_id,
    a.customer_id,
    a.currency,
    a.amount_due,
    a.interest_amount,
    a.indemnity_amount,
    a.charges_total,
    a.indemnity_currency,
    c.name,
    c.email,
    c.phone,
    c.street,
    c.postal_code,
    c.city,
    c.country,
    c.language,
    c.segment,
    c.collector,
    coalesce(invoices.invoices, []) as invoices
from deliveries d
join batch using (delivery_id)
join actions a using (action_id)
left join stg_customers c on c.customer_id = a.customer_id
left join invoices using (action_id)
order by batch.ord
