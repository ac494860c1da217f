-- model: int_metrics_action_recovery
-- grain: one row per measured action (int_metrics_actions) with what its claim recovered within
--        30 days: the decrease of the open amounts of the invoices it claims between the action
--        date and 30 days later, each computed from the point-in-time view at that date,
--        floored at 0 and capped at the action's amount_due
-- materialized: temp
with

actions as (
    select * from int_metrics_actions
),

claimed as (
    select distinct action_id, action_date, customer_id, currency, unnest(invoice_ids) as invoice_id
    from actions
),

opens as (
    select
        claimed.action_id,
        coalesce(sum(at_action.open_amount), 0) as open_at_action,
        coalesce(sum(after_30.open_amount), 0) as open_after_30d
    from claimed
    left join int_metrics_open_at as at_action
        on at_action.at_date = claimed.action_date
       and at_action.customer_id = claimed.customer_id
       and at_action.currency = claimed.currency
       and at_action.invoice_id = claimed.invoice_id
    left join int_metrics_open_at as after_30
        on after_30.at_date = claimed.action_date + 30
       and after_30.customer_id = claimed.customer_id
       and after_30.currency = claimed.currency
       and after_30.invoice_id = claimed.invoice_id
    group by claimed.action_id
),

delivered_channels as (
    -- the channels that reached the debtor (or would have, in a backfill replay)
    select action_id, list(distinct channel order by channel) as channels
    from deliveries
    where status in ('sent', 'simulated')
    group by action_id
)

select
    actions.*,
    cast(coalesce(opens.open_at_action, 0) as decimal(18,2)) as open_at_action,
    cast(coalesce(opens.open_after_30d, 0) as decimal(18,2)) as open_after_30d,
    cast(least(actions.amount_due, greatest(0, coalesce(opens.open_at_action, 0) - coalesce(opens.open_after_30d, 0)))
         as decimal(18,2)) as recovered_30d,
    coalesce(delivered_channels.channels, []) as delivered_channels
from actions
left join opens using (action_id)
left join delivered_channels using (action_id)
