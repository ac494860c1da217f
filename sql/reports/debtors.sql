-- report: debtors
-- grain: one row per unit (customer_id, currency) with an open invoice on as_of: its balance,
--        its customer, its place on the ladder and its last action (for the next step)
-- used by: tasks/report.py (the top overdue debtors, the Excel debtor list)
with

snapshot as (
    select * from invoice_snapshot where as_of = $as_of
),

balances as (
    select
        customer_id,
        currency,
        sum(open_amount) as open_amount,
        coalesce(sum(open_amount) filter (where days_past_due > 0), 0) as overdue_amount,
        max(days_past_due) as oldest_days_past_due,
        count(*) as open_invoices,
        count(*) filter (where days_past_due > 0) as overdue_invoices,
        bool_or(held) filter (where days_past_due > 0) as overdue_held,
        string_agg(distinct hold_kind, ', ' order by hold_kind) filter (where held) as hold_kinds
    from snapshot
    group by customer_id, currency
),

units as (
    select * from unit_stage where as_of = $as_of
),

last_actions as (
    select actions.episode_id, actions.stage as last_stage, actions.as_of as last_action_date,
           actions.status as last_action_status
    from dunning_actions as actions
    where actions.as_of <= $as_of
      and actions.episode_id in (select episode_id from units)
    qualify row_number() over (partition by actions.episode_id order by actions.stage_rank desc, actions.as_of desc) = 1
)

select
    balances.*,
    customers.name,
    customers.segment,
    customers.collector,
    customers.email,
    customers.phone,
    customers.city,
    units.current_stage,
    units.target_stage,
    units.ladder,
    units.held as unit_held,
    units.hold_reason,
    units.dunnable_amount,
    units.episode_id,
    units.notice_sent_on,
    units.notice_deadline,
    driving.due_date as driving_due_date,
    driving.days_past_due as driving_days_past_due,
    last_actions.last_stage,
    last_actions.last_action_date,
    last_actions.last_action_status
from balances
left join stg_customers as customers using (customer_id)
left join units using (customer_id, currency)
left join snapshot as driving on driving.invoice_id = units.driving_invoice_id
left join last_actions on last_actions.episode_id = units.episode_id
order by balances.overdue_amount desc, balances.open_amount desc, balances.customer_id, balances.currency
