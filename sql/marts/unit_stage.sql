-- model: unit_stage
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: its target and current stage, episode, hold and the day's action
-- materialized: incremental_as_of
with

decisions as (
    select * from int_ladder_decisions
),

stages as (
    select stage, stage_rank from ladder_stages
),

actions as (
    select * from dunning_actions where as_of <= $as_of
),

episode_actions as (
    -- the steps of the episode open after this run, up to and including as_of
    select actions.episode_id, arg_max(actions.stage, coalesce(stages.stage_rank, actions.stage_rank)) as current_stage
    from actions
    left join stages using (stage)
    where actions.episode_id in (select episode_id from decisions)
    group by actions.episode_id
),

today as (
    select customer_id, currency, arg_max(action_id, stage_rank) as action_id
    from actions
    where as_of = $as_of
    group by customer_id, currency
)

select
    cast($as_of as date) as as_of,
    decisions.customer_id,
    decisions.currency,
    target.stage as target_stage,
    episode_actions.current_stage,
    decisions.episode_id,
    decisions.held,
    decisions.hold_reason,
    decisions.hold_id,
    decisions.driving_invoice_id,
    decisions.driving_days_past_due,
    decisions.dunnable_amount,
    decisions.held_invoices,
    decisions.closed_episode_id,
    today.action_id,
    case when today.action_id is null then coalesce(decisions.no_action_reason, 'already_actioned') end
        as no_action_reason
from decisions
left join stages as target on target.stage_rank = decisions.target_rank
left join episode_actions using (episode_id)
left join today using (customer_id, currency)
