-- model: int_ladder_decisions
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: its episode after this run, and whether it takes a step today
--        (contract §3: one step a run, no skipping, min_gap_days, business days, approval)
-- materialized: temp
with

units as (
    select * from int_ladder_units
),

state as (
    select * from int_ladder_state
),

stages as (
    select * from ladder_stages
),

calendar as (
    select country, is_business_day from ladder_calendar where day = $as_of
),

acted_today as (
    -- an action already dated as_of (a re-run, or a real run under a backfill) is the day's step
    select customer_id, currency, arg_max(action_id, stage_rank) as action_id
    from dunning_actions
    where as_of = $as_of
    group by customer_id, currency
),

next_stages as (
    -- for each last stage (0: none yet), the next stage above it, and the next one when the
    -- driving invoice is already overdue: the stages before the due date (preventive) are
    -- then passed over
    select
        taken.stage_rank as last_rank,
        min(stages.stage_rank) as next_rank,
        min(stages.stage_rank) filter (where not stages.before_due_date) as next_rank_when_overdue
    from (select 0 as stage_rank union all select stage_rank from stages) as taken
    join stages on stages.stage_rank > taken.stage_rank
    group by taken.stage_rank
),

situated as (
    select
        units.*,
        state.open_episode_id,
        coalesce(state.last_episode_no, 0) as last_episode_no,
        coalesce(state.last_rank, 0) as last_rank,
        state.last_stage,
        state.last_action_on,
        coalesce(state.last_awaiting_approval, false) as last_awaiting_approval,
        not $business_days_only
            or coalesce(calendar.is_business_day, isodow(cast($as_of as date)) < 6) as business_day,
        acted_today.action_id as action_today
    from units
    left join state using (customer_id, currency)
    left join calendar on calendar.country = units.country
    left join acted_today using (customer_id, currency)
),

episodes as (
    select
        situated.*,
        case when coalesce(situated.driving_days_past_due, 0) > 0 then next_stages.next_rank_when_overdue
             else next_stages.next_rank end as next_rank,
        not situated.held and situated.open_episode_id is null and situated.target_rank is not null as opens,
        not situated.held and situated.open_episode_id is not null and situated.dunnable_amount = 0 as closes
    from situated
    left join next_stages on next_stages.last_rank = situated.last_rank
),

continued as (
    select
        episodes.*,
        case
            when opens then customer_id || '|' || currency || '|' || (last_episode_no + 1)
            when closes then null
            else open_episode_id
        end as episode_id,
        case when opens then last_episode_no + 1 end as new_episode_no,
        case when closes then open_episode_id end as closed_episode_id,
        last_action_on is null or datediff('day', last_action_on, cast($as_of as date)) >= $min_gap_days as gap_ok
    from episodes
),

stepped as (
    select
        continued.*,
        next_stage.stage as next_stage,
        continued.episode_id || '|' || next_stage.stage as next_action_id,
        continued.episode_id is not null
            and not continued.held
            and continued.target_rank > continued.last_rank
            and continued.next_rank <= continued.target_rank
            and not continued.last_awaiting_approval
            and continued.gap_ok
            and continued.business_day
            and continued.action_today is null
            as eligible
    from continued
    left join stages as next_stage on next_stage.stage_rank = continued.next_rank
)

select
    stepped.* exclude (eligible),
    coalesce(stepped.eligible, false) as acts,
    case
        when stepped.eligible then null
        when stepped.action_today is not null then null
        when stepped.held then 'held'
        when stepped.closes then 'episode_closed'
        when stepped.target_rank is null then 'no_target'
        when stepped.target_rank <= stepped.last_rank or stepped.next_rank > stepped.target_rank then 'at_target'
        when stepped.last_awaiting_approval then 'pending_approval'
        when not stepped.gap_ok then 'min_gap'
        when not stepped.business_day then 'non_business_day'
        else 'at_target'  -- no stage left to take
    end as no_action_reason
from stepped
