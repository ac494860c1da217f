-- Planned deliveries with the contact their channel needs, checked in Python before anything is
-- rendered (tasks/dispatch/__init__.py: an email address SendGrid would refuse never reaches it;
-- the delivery falls back to a letter as if there were no email — contract §3 "Contacts").
-- params: $as_of
select
    d.delivery_id,
    d.channel,
    a.action_id,
    a.stage,
    a.customer_id,
    c.email,
    c.phone,
    c.street,
    c.postal_code,
    c.city,
    exists (
        select 1 from deliveries o
        where o.action_id = d.action_id
          and o.delivery_id <> d.delivery_id
          and o.channel in ('letter', 'registered_letter')
          and o.status not in ('undeliverable', 'skipped', 'failed')
    ) as action_has_letter
from deliveries d
join dunning_actions a using (action_id)
left join stg_customers c on c.customer_id = a.customer_id
where d.status = 'planned'
  and a.mode = 'live'
  and a.as_of <= $as_of
order by d.delivery_id
