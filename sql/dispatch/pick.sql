-- What tonight's dispatch acts on: every planned delivery of a live action dated up to as_of
-- (the temp view planned_live, sql/dispatch/planned_live.sql), with what batching needs.
select
    p.delivery_id,
    p.channel,
    p.stage,
    p.ladder,
    p.customer_id,
    p.currency,
    p.collector,
    p.country
from planned_live p
order by p.channel, p.collector nulls last, p.customer_id, p.currency, p.delivery_id
