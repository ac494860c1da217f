-- model: int_metrics_action_recovery
-- grain: one row per measured action (int_metrics_actions) with what its claim recovered within
--        30 days: the decrease of the open amounts of the invoices it claims between the action
--        date and 30 days later, each computed from the point-in-time view at that date
--        (int_metrics_claims_open_at), floored at 0 and capped at the action's amount_due, split
--        into what credit notes issued in the window explain (credited_30d) and the rest, paid
--        (recovered_30d): only payments count as money recovered (contract §5)
-- materialized: temp
with

actions as (
    select * from int_metrics_actions
),

claims_open_at as (
    select * from int_metrics_claims_open_at
),

claimed as (
    -- each invoice an action claims, once (an invoice id names one invoice, of the action's unit)
    select distinct action_id, action_date, unnest(invoice_ids) as invoice_id
    from actions
),

opens as (
    select
        claimed.action_id,
        sum(claims_open_at.open_amount) filter (where claims_open_at.at_date = claimed.action_date) as open_at_action,
        sum(claims_open_at.open_amount) filter (where claims_open_at.at_date = claimed.action_date + 30) as open_after_30d
    from claimed
    join claims_open_at
        on claims_open_at.invoice_id = claimed.invoice_id
       and claims_open_at.at_date in (claimed.action_date, claimed.action_date + 30)
    group by claimed.action_id
),

credit_notes as (
    -- the credit notes issued to the action's unit in (action date, action date + 30]
    select actions.action_id, sum(notes.amount) as credit_notes_30d
    from actions
    join stg_invoices as notes
        on notes.customer_id = actions.customer_id
       and notes.currency = actions.currency
       and notes.kind = 'credit_note'
       and notes.issue_date > actions.action_date
       and notes.issue_date <= actions.action_date + 30
    group by actions.action_id
),

decreases as (
    select
        actions.action_id,
        least(actions.amount_due, greatest(0, coalesce(opens.open_at_action, 0) - coalesce(opens.open_after_30d, 0)))
            as settled_30d,
        coalesce(credit_notes.credit_notes_30d, 0) as credit_notes_30d
    from actions
    left join opens using (action_id)
    left join credit_notes using (action_id)
),

delivered_channels as (
    -- the channels that reached the debtor (or would have, in a backfill replay)
    select action_id, list(distinct channel order by channel) as channels
    from deliveries
    where status in ('sent', 'simulated')
      and action_id in (select action_id from actions)
    group by action_id
)

select
    actions.* exclude (invoice_ids),  -- the mart reads the amounts, not the claim's list
    cast(coalesce(opens.open_at_action, 0) as decimal(38,2)) as open_at_action,
    cast(coalesce(opens.open_after_30d, 0) as decimal(38,2)) as open_after_30d,
    -- credit notes first: a claim they cancel is not money recovered; what they do not explain was paid
    cast(decreases.settled_30d - least(decreases.settled_30d, decreases.credit_notes_30d) as decimal(38,2))
        as recovered_30d,
    cast(least(decreases.settled_30d, decreases.credit_notes_30d) as decimal(38,2)) as credited_30d,
    coalesce(delivered_channels.channels, []) as delivered_channels
from actions
left join opens using (action_id)
left join decreases using (action_id)
left join delivered_channels using (action_id)
