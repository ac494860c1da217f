-- model: int_ladder_decisions
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: its episode after this run, and whether it takes a step today
--        (contract §3: one step a run, no skipping, min_gap_days, business days, approval,
--        tolerance, live state and replays) and, when it waits for something, why
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

rates as (
    select * from ladder_rates
),

acted_today as (
    -- an action already dated as_of (a re-run, or a real run under a backfill) is the day's step;
    -- a live run counts only real actions (a simulated one of that date is replay history)
    select customer_id, currency, arg_max(action_id, stage_rank) as action_id
    from dunning_actions
    where as_of = $as_of
      and ($mode = 'replay' or status <> 'simulated')
    group by customer_id, currency
),

ladders as (
    select * from ladder_defs
),

next_stages as (
    -- for each ladder and last stage (0: none yet; ranks are the catalogue's, so a stage taken
    -- in another ladder counts), the next stage of the ladder above it, and the next one when the
    -- driving invoice is already overdue: the stages before the due date (preventive) are
    -- then passed over. A unit whose ladder changes goes on from the rank it reached.
    select
        stages.ladder,
        taken.stage_rank as last_rank,
        min(stages.stage_rank) as next_rank,
        min(stages.stage_rank) filter (where not stages.before_due_date) as next_rank_when_overdue
    from (select 0 as stage_rank union select stage_rank from stages) as taken
    join stages on stages.stage_rank > taken.stage_rank
    group by stages.ladder, taken.stage_rank
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
        coalesce(state.formal_notice_sent, false) as formal_notice_sent,
        state.notice_sent_on,
        state.notice_received_on,
        state.notice_deadline,
        -- the formal notice's date: its registered letter's deposit, else the notice's own date
        coalesce(state.notice_sent_on, state.notice_on) as notice_on,
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
    left join next_stages on next_stages.ladder = situated.ladder and next_stages.last_rank = situated.last_rank
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

gated as (
    select
        continued.*,
        next_stage.stage as next_stage,
        continued.episode_id || '|' || next_stage.stage as next_action_id,
        -- tolerance: what the next step would claim (the overdue amount from call_1 on, the
        -- dunnable amount before) is below the currency's tolerance: no contact for cents
        case when coalesce(next_stage.claims_overdue_only, false) then continued.overdue_amount
             else continued.dunnable_amount end as claimable_amount,
        case when coalesce(next_stage.claims_overdue_only, false) then continued.overdue_amount
             else continued.dunnable_amount end < continued.tolerance as below_tolerance,
        -- nothing after the formal notice unless one was really sent in the episode
        coalesce(next_stage.after_formal_notice, false) and not continued.formal_notice_sent as notice_not_sent,
        -- the formal notice's registered letter gives the debtor its deadline: the step after it
        -- comes the day after the deadline (receipt + deadline_days), or, no receipt known yet,
        -- receipt_wait_days after the letter left
        coalesce(next_stage.after_formal_notice, false) and continued.notice_sent_on is not null and (
            case when continued.notice_deadline is not null then cast($as_of as date) <= continued.notice_deadline
                 else datediff('day', continued.notice_sent_on, cast($as_of as date)) < $receipt_wait_days end
        ) as notice_deadline_running,
        -- the next step states late-payment charges: its overdue invoices' late days need a
        -- reference rate for every half-year from the day after the driving invoice's due date
        coalesce(next_stage.charged, false)
            and ladders.charge_kind <> 'none'
            and (ladders.charge_segments is null or list_contains(ladders.charge_segments, continued.segment))
            and coalesce(continued.driving_days_past_due, 0) > 0 as needs_rates,
        ladders.charge_kind,
        -- legal-rate interest runs from the day after the formal notice (for the notice itself:
        -- from the day after as_of, nothing accrued)
        case
            when ladders.charge_kind = 'legal_rate' and not coalesce(next_stage.legal_notice, false)
                and continued.notice_on is not null
                then continued.notice_on + 1
            when ladders.charge_kind = 'legal_rate' then cast($as_of as date) + 1
        end as legal_interest_from
    from continued
    left join stages as next_stage on next_stage.ladder = continued.ladder and next_stage.stage_rank = continued.next_rank
    left join ladders on ladders.ladder = continued.ladder
),

half_years_needed as (
    select
        gated.customer_id,
        gated.currency,
        gated.charge_kind,
        cast(unnest(generate_series(
            cast(make_date(year(first_day), case when month(first_day) <= 6 then 1 else 7 end, 1) as timestamp),
            cast(cast($as_of as date) as timestamp),
            interval 6 month
        )) as date) as half_year_start
    from (
        select
            *,
            -- the first day of interest: the day after the due date, or (legal rate) after the notice
            least(coalesce(legal_interest_from, driving_due_date + 1), cast($as_of as date)) as first_day
        from gated
    ) as gated
    where gated.needs_rates
),

missing_rates as (
    -- the first half-year the next step's charges need and the policy has no rate for (the
    -- reference rates, or the legal interest rates for a legal-rate ladder)
    select
        customer_id,
        currency,
        min(half_year_start) as half_year_start
    from half_years_needed
    where (charge_kind = 'commercial' and half_year_start not in (select valid_from from rates))
       or (charge_kind = 'legal_rate' and half_year_start not in (select valid_from from ladder_legal_rates))
    group by customer_id, currency
),

stepped as (
    select
        gated.*,
        lpad(cast(year(missing_rates.half_year_start) as varchar), 4, '0')
            || '-H' || case when month(missing_rates.half_year_start) = 1 then '1' else '2' end as missing_rate,
        gated.episode_id is not null
            and not gated.held
            and gated.target_rank > gated.last_rank
            and gated.next_rank <= gated.target_rank
            and not gated.last_awaiting_approval
            and not gated.below_tolerance
            and not gated.notice_not_sent
            and not gated.notice_deadline_running
            and missing_rates.half_year_start is null
            and gated.gap_ok
            and gated.business_day
            and gated.action_today is null
            as eligible
    from gated
    left join missing_rates using (customer_id, currency)
),

reasoned as (
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
            when stepped.below_tolerance then 'at_target'
            when stepped.last_awaiting_approval then 'pending_approval'
            when stepped.notice_not_sent then 'formal_notice_not_sent'
            when stepped.notice_deadline_running then 'notice_deadline'
            when stepped.missing_rate is not null then 'missing_reference_rate'
            when not stepped.gap_ok then 'min_gap'
            when not stepped.business_day then 'non_business_day'
            else 'at_target'  -- no stage left to take
        end as no_action_reason
    from stepped
)

select
    reasoned.*,
    -- why a unit that has a stage to take waits: the rule and its facts, in words
    case
        when no_action_reason = 'at_target' and below_tolerance and target_rank > last_rank then 'below_tolerance'
        when no_action_reason in ('formal_notice_not_sent', 'missing_reference_rate', 'notice_deadline') then no_action_reason
    end as wait_reason,
    case
        when no_action_reason = 'at_target' and below_tolerance and target_rank > last_rank then
            'owes ' || cast(claimable_amount as varchar) || ' ' || currency || ', below the tolerance of ' || cast(tolerance as varchar) || ' ' || currency
        when no_action_reason = 'formal_notice_not_sent' then
            'no formal notice was sent in episode ' || episode_id || ': ' || next_stage || ' waits for one'
        when no_action_reason = 'notice_deadline' and notice_deadline is not null then
            'the formal notice was received on ' || strftime(notice_received_on, '%Y-%m-%d') || ', its deadline runs to '
            || strftime(notice_deadline, '%Y-%m-%d') || ': ' || next_stage || ' from '
            || strftime(notice_deadline + 1, '%Y-%m-%d')
        when no_action_reason = 'notice_deadline' then
            'no receipt known for the formal notice sent on ' || strftime(notice_sent_on, '%Y-%m-%d') || ': '
            || next_stage || ' waits for it until ' || strftime(notice_sent_on + cast($receipt_wait_days as integer), '%Y-%m-%d')
            || ' (receipt_wait_days ' || cast($receipt_wait_days as varchar) || ')'
        when no_action_reason = 'missing_reference_rate' and charge_kind = 'legal_rate' then
            'no legal interest rate for ' || missing_rate || ' in the policy (legal_interest_rates.rates: add - {half_year: '
            || missing_rate || ', individuals: "…", other: "…"}), needed for the charges of ' || next_stage
        when no_action_reason = 'missing_reference_rate' then
            'no reference rate for ' || missing_rate || ' in the policy (reference_rates: add - {half_year: '
            || missing_rate || ', rate: "…"}), needed for the charges of ' || next_stage
    end as wait_detail
from reasoned
