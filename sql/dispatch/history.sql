-- The history of every unit (customer, currency) in the batch (temp table dispatch_batch):
-- each live action up to $as_of, oldest first, with its deliveries. Worklists show it to the
-- collector; handoff dossiers export it (with the letters' postal tracking) and copy the letters it lists.
-- params: $as_of
with

units as (
    select distinct a.customer_id, a.currency
    from dispatch_batch b
    join deliveries d using (delivery_id)
    join dunning_actions a using (action_id)
)

select
    a.customer_id,
    a.currency,
    a.action_id,
    a.as_of,
    a.stage,
    a.stage_rank,
    a.amount_due,
    a.charges_total,
    a.status as action_status,
    a.decided_by,
    a.decision_reason,
    list(struct_pack(
        delivery_id := d.delivery_id,
        channel := d.channel,
        status := d.status,
        provider := d.provider,
        provider_message_id := d.provider_message_id,
        sent_at := d.sent_at,
        artifact_path := d.artifact_path,
        last_error := d.last_error,
        delivery_state := d.delivery_state,
        tracking_number := pt.tracking_number,
        received_on := pt.received_on,
        deadline_on := pt.deadline_on,
        return_reason := pt.return_reason
    ) order by d.channel, d.delivery_id) filter (where d.delivery_id is not null) as deliveries
from dunning_actions a
join units using (customer_id, currency)
left join deliveries d using (action_id)
left join postal_tracking pt on pt.delivery_id = d.delivery_id  -- a registered letter's proof of receipt
where a.mode = 'live'
  and a.as_of <= $as_of
group by all
order by a.customer_id, a.currency, a.as_of, a.stage_rank, a.action_id
