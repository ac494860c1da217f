-- report: attention
-- grain: one row per action or delivery that needs a person on as_of:
--          pending_approval — an action awaiting approval (any date up to as_of);
--          undeliverable, failed — a delivery of an action dated in the 7 days up to as_of;
--          in_doubt — a delivery whose outcome is not known (status sending, in_doubt or unknown);
--          missing_reference_rate — a unit whose next step waits for a reference rate the policy lacks
-- used by: tasks/report.py ("What needs a person")
with

actions as (
    select * from dunning_actions where as_of <= $as_of
),

pending as (
    select 'pending_approval' as kind, actions.as_of, actions.action_id, null as delivery_id,
           actions.customer_id, actions.currency, actions.stage, null as channel,
           actions.amount_due, actions.status, null as detail
    from actions
    where actions.status = 'pending_approval'
),

deliveries_needing as (
    select
        case when deliveries.status in ('sending', 'in_doubt', 'unknown') then 'in_doubt'
             else deliveries.status end as kind,
        actions.as_of, actions.action_id, deliveries.delivery_id,
        actions.customer_id, actions.currency, actions.stage, deliveries.channel,
        actions.amount_due, deliveries.status, deliveries.last_error as detail
    from deliveries
    join actions using (action_id)
    where deliveries.status in ('sending', 'in_doubt', 'unknown')
       or (deliveries.status in ('undeliverable', 'failed') and actions.as_of > cast($as_of as date) - 7)
),

missing_rates as (
    select 'missing_reference_rate' as kind, units.as_of, null as action_id, null as delivery_id,
           units.customer_id, units.currency, units.current_stage as stage, null as channel,
           units.dunnable_amount as amount_due, null as status, units.wait_detail as detail
    from unit_stage as units
    where units.as_of = $as_of
      and units.wait_reason = 'missing_reference_rate'
)

select needing.*, customers.name
from (select * from pending union all select * from deliveries_needing union all select * from missing_rates) as needing
left join stg_customers as customers using (customer_id)
order by needing.kind, needing.as_of desc, needing.amount_due desc, needing.action_id, needing.delivery_id
