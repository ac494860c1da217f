-- model: int_ladder_state
-- grain: one row per unit (customer_id, currency) with an episode opened before as_of: the
--        episode still open when as_of starts (if any), the last step taken in it before as_of,
--        whether a formal notice was sent in it (and its registered letter's sending, receipt
--        and deadline: relance post import), and the unit's last episode number. Only rows
--        dated before as_of are read, so a re-run of as_of starts from the same state.
--        Live state and replays (contract §3): a live run reads only the actions that really
--        happened (status not 'simulated'); a replay reads those and its own simulated steps
--        (a backfill reads real actions as its own state, and goes on from them).
-- materialized: temp
with

episodes as (
    select * from dunning_episodes where opened_on < $as_of
),

stages as (
    -- ranks are the catalogue's, the same in every ladder
    select distinct stage, stage_rank from ladder_stages
),

actions as (
    select * from dunning_actions
    where as_of < $as_of
      and ($mode = 'replay' or status <> 'simulated')
),

notices_sent as (
    -- episodes where a formal notice really went out: one of its messages was sent (a replay's
    -- simulated messages count for the replay). Rejected at approval, undeliverable on every
    -- channel, failed or not yet dispatched: not sent. notice_on: the notice's date (its action's).
    select
        actions.episode_id,
        min(actions.as_of) as notice_on
    from actions
    join deliveries using (action_id)
    where actions.stage = $notice_stage
      and (deliveries.status = 'sent' or ($mode = 'replay' and deliveries.status = 'simulated'))
    group by actions.episode_id
),

notice_letters as (
    -- the registered letters of formal notices sent (for a replay, its simulated ones too, as
    -- notices_sent counts them: a replay equals the nightly runs it stands for), with their postal
    -- tracking: the step after the notice waits for its deadline, or for the
    -- receipt until receipt_wait_days after the letter left (docs/policy.md). A letter refused or
    -- left unclaimed counts as received on its first presentation (received_on, set at import).
    select
        actions.episode_id,
        max(coalesce(postal_tracking.deposited_on, actions.as_of)) as notice_sent_on,
        max(postal_tracking.received_on) as notice_received_on,
        max(postal_tracking.deadline_on) as notice_deadline
    from actions
    join deliveries using (action_id)
    left join postal_tracking using (delivery_id)
    where actions.stage = $notice_stage
      and deliveries.channel = 'registered_letter'
      and (deliveries.status = 'sent' or ($mode = 'replay' and deliveries.status = 'simulated'))
    group by actions.episode_id
),

numbering as (
    select customer_id, currency, max(episode_no) as last_episode_no
    from episodes
    group by customer_id, currency
),

open_episodes as (
    select customer_id, currency, episode_id, episode_no, opened_on
    from episodes
    where closed_on is null or closed_on >= $as_of
    qualify row_number() over (partition by customer_id, currency order by episode_no desc) = 1
),

earlier_actions as (
    select
        actions.episode_id,
        actions.as_of,
        actions.stage,
        -- ranks follow the current policy; a stage it no longer has keeps its recorded rank
        coalesce(stages.stage_rank, actions.stage_rank) as stage_rank,
        -- awaiting a person: pending approval (live runs). A replay takes every approval as
        -- given on the day, as --auto-approve does, so a backfill climbs past the formal notice.
        actions.status = 'pending_approval' as awaiting_approval
    from actions
    left join stages using (stage)
    where actions.episode_id in (select episode_id from open_episodes)
),

last_steps as (
    select
        episode_id,
        max(stage_rank) as last_rank,
        arg_max(stage, stage_rank) as last_stage,
        max(as_of) as last_action_on,
        arg_max(awaiting_approval, (as_of, stage_rank)) as last_awaiting_approval
    from earlier_actions
    group by episode_id
)

select
    numbering.customer_id,
    numbering.currency,
    numbering.last_episode_no,
    open_episodes.episode_id as open_episode_id,
    open_episodes.opened_on as open_episode_opened_on,
    last_steps.last_rank,
    last_steps.last_stage,
    last_steps.last_action_on,
    coalesce(last_steps.last_awaiting_approval, false) as last_awaiting_approval,
    notices_sent.episode_id is not null as formal_notice_sent,
    notices_sent.notice_on,
    notice_letters.notice_sent_on,
    notice_letters.notice_received_on,
    notice_letters.notice_deadline
from numbering
left join open_episodes using (customer_id, currency)
left join last_steps on last_steps.episode_id = open_episodes.episode_id
left join notices_sent on notices_sent.episode_id = open_episodes.episode_id
left join notice_letters on notice_letters.episode_id = open_episodes.episode_id
