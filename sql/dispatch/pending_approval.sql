-- The actions waiting for approval: one row per action dated up to $as_of with deliveries still
-- pending_approval, with its amounts, charges and those deliveries (read by `relance approve`,
-- the approval pause of the flow, the drafts and dispatch's count).
-- params: $as_of
select
    a.action_id,
    a.as_of,
    a.stage,
    a.customer_id,
    a.currency,
    a.amount_due,
    a.invoice_ids,
    a.interest_amount as interest,
    a.indemnity_amount as indemnity,
    a.charges_total,
    a.indemnity_currency,
    list(d.delivery_id order by d.delivery_id) as delivery_ids,
    list(d.channel order by d.delivery_id) as channels,
    count(*) as deliveries
from dunning_actions a
join deliveries d using (action_id)
where d.status = 'pending_approval'
  and a.as_of <= $as_of
group by all
order by a.as_of, a.action_id
