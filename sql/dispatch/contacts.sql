-- Planned deliveries with the contact their channel needs, checked in Python before anything is
-- rendered (tasks/dispatch/main.py: an email address SendGrid would refuse never reaches it;
-- the delivery falls back to a letter as if there were no email — contract §3 "Contacts").
-- Reads the temp view planned_live (sql/dispatch/planned_live.sql), built for tonight's as_of.
-- email_bad / email_opted_out: the provider reported the customer's current address as bounced or
-- dropped, or the customer unsubscribed / reported spam (contact_flags, tasks/events.py).
-- phone_bad: a collector recorded the customer's current number as wrong (outcome wrong_number).
select
    p.delivery_id,
    p.channel,
    p.action_id,
    p.stage,
    p.customer_id,
    p.email,
    p.phone,
    p.street,
    p.postal_code,
    p.city,
    exists(
        select 1 from deliveries o
        where o.action_id = p.action_id
          and o.delivery_id <> p.delivery_id
          and o.channel in ('letter', 'registered_letter')
          and o.status not in ('undeliverable', 'skipped', 'failed')
    ) as action_has_letter,
    exists(
        select 1 from contact_flags f
        where f.customer_id = p.customer_id and f.channel = 'email' and f.flag = 'bad'
          and (f.address is null or f.address = lower(trim(p.email)))
    ) as email_bad,
    exists(
        select 1 from contact_flags f
        where f.customer_id = p.customer_id and f.channel = 'email' and f.flag = 'opted_out'
    ) as email_opted_out,
    -- a collector recorded a wrong number (outcome wrong_number, tasks/outcomes.py) for the
    -- customer's current phone: calls and SMS fall back as if there were no phone
    exists(
        select 1 from contact_flags f
        where f.customer_id = p.customer_id and f.channel = 'phone' and f.flag = 'bad'
          and (f.address is null or f.address = p.phone)
    ) as phone_bad
from planned_live p
order by p.delivery_id
