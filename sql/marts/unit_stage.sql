-- model: unit_stage
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: its target and current stage, episode, hold and the day's action
-- materialized: incremental_as_of
with

decisions as (
    select * from int_ladder_decisions
),

stages as (
    -- ranks are the catalogue's, the same in every ladder
    select distinct stage, stage_rank from ladder_stages
),

today as (
    -- the actions dated as_of: created by this run, or found by it (a re-run, a real run); a live
    -- run's state holds only real actions (a simulated one of that date is replay history)
    select * from dunning_actions
    where as_of = $as_of
      and ($mode = 'replay' or status <> 'simulated')
),

unit_today as (
    select customer_id, currency, arg_max(action_id, stage_rank) as action_id
    from today
    group by customer_id, currency
),

episode_today as (
    select episode_id, arg_max(stage, stage_rank) as stage
    from today
    group by episode_id
),

profiles as (
    -- the payment-behaviour profile of the latest date measured before as_of (measure runs after
    -- the ladder: in a nightly run or a replay, the day before's; a re-run reads the same one)
    select customer_id, currency, as_of as profile_as_of, score, risk_class
    from debtor_profile
    where as_of = (select max(as_of) from debtor_profile where as_of < $as_of)
)

select
    cast($as_of as date) as as_of,
    decisions.customer_id,
    decisions.currency,
    target.stage as target_stage,
    -- the last stage taken in the open episode: today's step, else the last one before today
    case when decisions.episode_id is not null then coalesce(episode_today.stage, decisions.last_stage) end
        as current_stage,
    decisions.episode_id,
    decisions.held,
    decisions.hold_reason,
    decisions.hold_id,
    decisions.hold_conflict,
    decisions.driving_invoice_id,
    decisions.driving_days_past_due,
    decisions.dunnable_amount,
    decisions.held_invoices,
    decisions.closed_episode_id,
    unit_today.action_id,
    case when unit_today.action_id is null then coalesce(decisions.no_action_reason, 'already_actioned') end
        as no_action_reason,
    case when unit_today.action_id is null then decisions.wait_reason end as wait_reason,
    case when unit_today.action_id is null then decisions.wait_detail end as wait_detail,
    -- the formal notice's registered letter (relance post import): sent (deposited), received
    -- (or refused / unclaimed: first presented), and the deadline the receipt starts
    decisions.notice_sent_on,
    decisions.notice_received_on,
    decisions.notice_deadline,
    profiles.score as risk_score,
    profiles.risk_class,
    profiles.profile_as_of,
    -- the ladder the unit climbs on as_of, the rule that chose it (ladder_rules; standard and
    -- default when none matched) and the risk class the rules read (the profile of as_of; null
    -- when no rule reads it)
    decisions.ladder,
    decisions.ladder_rule,
    decisions.ladder_risk_class
from decisions
left join stages as target on target.stage_rank = decisions.target_rank
left join episode_today using (episode_id)
left join unit_today using (customer_id, currency)
left join profiles using (customer_id, currency)
