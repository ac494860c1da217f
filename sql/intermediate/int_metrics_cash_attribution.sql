-- model: int_metrics_cash_attribution
-- grain: one row per payment received in (as_of − 30, as_of] (the payments of collected_30d), with
--        the last step relance took for its unit before the payment's date: the real action's
--        stage, the channel that reached the debtor and the collector who recorded an outcome of
--        it ('none' when there is none); read by marts/recovery_metrics (docs/metrics.md
--        "Cash collected by the last step before it")
-- materialized: temp
--
-- A real action: mode live, not simulated by a backfill, not rejected, cancelled or still awaiting
-- approval (it never reached the debtor). "Before": dated strictly before the payment's day (an
-- action of the same day may have crossed the payment). Each payment is attributed once, so that
-- the sums by stage, by channel and by collector each add up to collected_30d.
with

payments as (
    select payment_id, customer_id, currency, paid_date, amount
    from stg_payments
    where paid_date > cast($as_of as date) - 30 and paid_date <= $as_of
),

real_actions as (
    select action_id, as_of as action_date, customer_id, currency, stage, stage_rank
    from dunning_actions
    where mode = 'live'
      and status not in ('simulated', 'rejected', 'cancelled', 'pending_approval')
      and as_of < $as_of
),

last_action as (
    -- each payment's last real action of its unit dated before the payment
    select
        payments.payment_id,
        real_actions.action_id,
        real_actions.action_date,
        real_actions.stage
    from payments
    join real_actions
        on real_actions.customer_id = payments.customer_id
       and real_actions.currency = payments.currency
       and real_actions.action_date < payments.paid_date
    qualify row_number() over (partition by payments.payment_id
                               order by real_actions.action_date desc, real_actions.stage_rank desc,
                                        real_actions.action_id desc) = 1
),

action_channels as (
    -- the channel of the action that reached the debtor: its first delivery sent (an action sent by
    -- email and SMS counts once, for the first)
    select action_id, channel
    from deliveries
    where status = 'sent' and action_id in (select action_id from last_action)
    qualify row_number() over (partition by action_id order by sent_at nulls last, created_at, delivery_id) = 1
),

action_collectors as (
    -- who recorded what the debtor said at that step (the call or visit of a worklist): the
    -- latest outcome of the action said by the payment's day
    select
        last_action.payment_id,
        outcomes.recorded_by
    from last_action
    join payments using (payment_id)
    join outcomes
        on outcomes.action_id = last_action.action_id
       and outcomes.said_on <= payments.paid_date
    qualify row_number() over (partition by last_action.payment_id
                               order by outcomes.said_on desc, outcomes.recorded_at desc, outcomes.outcome_id desc) = 1
)

select
    payments.payment_id,
    payments.customer_id,
    payments.currency,
    payments.paid_date,
    cast(payments.amount as decimal(38,2)) as amount,
    last_action.action_id,
    last_action.action_date,
    coalesce(last_action.stage, 'none') as stage,
    coalesce(action_channels.channel, 'none') as channel,
    coalesce(action_collectors.recorded_by, 'none') as collector
from payments
left join last_action using (payment_id)
left join action_channels on action_channels.action_id = last_action.action_id
left join action_collectors using (payment_id)
