-- model: planned_live
-- grain: one row per planned delivery of a live action dated up to as_of (tonight's, approved
--        ones, SMS deferred by quiet hours): what tonight's dispatch acts on, with its action and
--        customer. contacts.sql checks their contacts, pick.sql batches them.
-- materialized: temp_view
select
    d.delivery_id,
    d.action_id,
    d.channel,
    a.stage,
    coalesce(a.ladder, 'standard') as ladder,
    a.customer_id,
    a.currency,
    c.email,
    c.phone,
    c.street,
    c.postal_code,
    c.city,
    c.collector,
    c.country
from deliveries d
join dunning_actions a using (action_id)
left join stg_customers c on c.customer_id = a.customer_id
where d.status = 'planned'
  and a.mode = 'live'
  and a.as_of <= $as_of
