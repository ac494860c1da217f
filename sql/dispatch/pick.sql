-- What tonight's dispatch acts on: every planned delivery of a live action dated up to $as_of
-- (tonight's, approved ones, SMS deferred by quiet hours), with what batching needs.
-- params: $as_of
select
    d.delivery_id,
    d.channel,
    a.stage,
    a.customer_id,
    a.currency,
    c.collector,
    c.country
from deliveries d
join dunning_actions a using (action_id)
left join stg_customers c on c.customer_id = a.customer_id
where d.status = 'planned'
  and a.mode = 'live'
  and a.as_of <= $as_of
order by d.channel, c.collector nulls last, a.customer_id, a.currency, d.delivery_id
