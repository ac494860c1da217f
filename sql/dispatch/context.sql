-- Everything a message says, one row per delivery of the batch (temp table dispatch_batch):
-- the customer's contacts, the action (stage, amount, late-payment charges) and the invoices it
-- claims, as of the send date $as_of (contract §3 "What a message says"): the invoices still open
-- and unheld that day, their open amounts and days late, and the charges recomputed to that day
-- (temp table send_claims, sql/dispatch/send_claims.sql, and the ladder's charge rules run on
-- it: send_charges, send_charge_periods). An action sent on the day it was decided
-- states the charges the ladder computed (dispatch_charges, dispatch_charge_periods: temp views
-- over action_charges and action_charge_periods, empty when absent). The decided figures come
-- along (decided_*) so that what changed since the decision is recorded.
with

batch as (
    select delivery_id, ord from dispatch_batch
),

actions as (
    select a.*, a.as_of <> cast($as_of as date) as recomputed
    from dunning_actions a
    where a.action_id in (select d.action_id from deliveries d join batch using (delivery_id))
),

charges as (
    -- per (action, invoice): recomputed to the send date, or as the ladder decided
    select action_id, invoice_id, interest_amount, indemnity_amount, indemnity_currency
    from send_charges
    union all
    select ch.action_id, ch.invoice_id, ch.interest_amount, ch.indemnity_amount, null as indemnity_currency
    from dispatch_charges ch
    join actions a on a.action_id = ch.action_id and not a.recomputed
),

periods as (
    select action_id, half_year, reference_rate, annual_rate
    from send_charge_periods
    union all
    select p.action_id, p.half_year, p.reference_rate, p.annual_rate
    from dispatch_charge_periods p
    join actions a on a.action_id = p.action_id and not a.recomputed
),

rates as (
    select
        action_id,
        list(distinct struct_pack(half_year := half_year, reference_rate := reference_rate, annual_rate := annual_rate)
             order by struct_pack(half_year := half_year, reference_rate := reference_rate, annual_rate := annual_rate)) as rates
    from periods
    group by action_id
),

invoices as (
    select
        c.action_id,
        any_value(c.figures_as_of) as figures_as_of,
        list(struct_pack(
            invoice_id := c.invoice_id,
            kind := c.kind,
            issue_date := c.issue_date,
            due_date := c.due_date,
            amount := c.amount,
            open_amount := c.open_amount,
            days_past_due := c.days_past_due,
            interest := ch.interest_amount,
            indemnity := ch.indemnity_amount
        ) order by c.due_date, c.invoice_id) as invoices,
        list(c.invoice_id order by c.due_date, c.invoice_id) as invoice_ids,
        cast(sum(c.open_amount) as decimal(38,2)) as amount_due,
        cast(sum(ch.interest_amount) as decimal(38,2)) as interest_amount,
        cast(sum(ch.indemnity_amount) as decimal(38,2)) as indemnity_amount
    from send_claims c
    left join charges ch on ch.action_id = c.action_id and ch.invoice_id = c.invoice_id
    group by c.action_id
),

stated as (
    -- the figures the message states: the decided ones on the decision day, else the send date's
    select
        a.action_id,
        coalesce(i.figures_as_of, a.as_of) as figures_as_of,
        case when a.recomputed then coalesce(i.amount_due, 0.00) else a.amount_due end as amount_due,
        case when a.recomputed then coalesce(i.invoice_ids, []) else a.invoice_ids end as invoice_ids,
        case when not a.recomputed then a.interest_amount
             when a.interest_amount is not null then coalesce(i.interest_amount, 0.00) end as interest_amount,
        case when not a.recomputed then a.indemnity_amount
             when a.indemnity_amount is not null then coalesce(i.indemnity_amount, 0.00) end as indemnity_amount
    from actions a
    left join invoices i using (action_id)
)

select
    d.delivery_id,
    d.action_id,
    d.channel,
    d.status,
    d.attempts,
    a.as_of as action_as_of,
    a.recomputed,
    st.figures_as_of,
    a.stage,
    coalesce(a.ladder, 'standard') as ladder,
    a.episode_id,
    a.customer_id,
    a.currency,
    cast(st.amount_due as decimal(38,2)) as amount_due,
    st.invoice_ids,
    st.interest_amount,
    st.indemnity_amount,
    case
        when not a.recomputed then a.charges_total
        when st.interest_amount is null and st.indemnity_amount is null then null
        -- the indemnity is a fixed sum in its own currency: it joins the total only in that currency
        else cast(coalesce(st.interest_amount, 0)
                  + case when coalesce(a.indemnity_currency, a.currency) = a.currency
                         then coalesce(st.indemnity_amount, 0) else 0 end as decimal(38,2))
    end as charges_total,
    a.indemnity_currency,
    a.amount_due as decided_amount_due,
    a.invoice_ids as decided_invoice_ids,
    a.interest_amount as decided_interest_amount,
    a.indemnity_amount as decided_indemnity_amount,
    a.charges_total as decided_charges_total,
    coalesce(rates.rates, []) as rates,
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
join stated st using (action_id)
left join stg_customers c on c.customer_id = a.customer_id
left join invoices using (action_id)
left join rates using (action_id)
order by batch.ord
