-- model: int_ladder_deliveries
-- grain: one row per delivery of an action created on as_of: each channel of its stage, or a
--        letter instead when the contact is missing (one letter however many channels fall back)
-- materialized: temp
with

steps as (
    select * from int_ladder_decisions where acts
),

stages as (
    select * from ladder_stages
),

ladders as (
    select * from ladder_defs
),

actions as (
    select
        steps.next_action_id as action_id,
        steps.customer_id,
        steps.currency,
        steps.ladder,
        stages.stage,
        stages.requires_approval,
        ladders.letters_require_approval
    from steps
    join stages on stages.ladder = steps.ladder and stages.stage_rank = steps.next_rank
    join ladders on ladders.ladder = steps.ladder
),

units as (
    select customer_id, currency, has_email, has_phone, has_address from int_ladder_units
),

channels as (
    select * from ladder_stage_channels
),

requested as (
    select
        actions.action_id,
        actions.requires_approval,
        actions.letters_require_approval,
        channels.position,
        channels.channel as requested_channel,
        case channels.channel
            when 'email' then units.has_email
            when 'sms' then units.has_phone
            when 'phone' then units.has_phone
            else true
        end as contact_known,
        bool_or(channels.channel in ('letter', 'registered_letter'))
            over (partition by actions.action_id) as stage_sends_letter,
        units.has_address
    from actions
    join channels on channels.ladder = actions.ladder and channels.stage = actions.stage
    join units using (customer_id, currency)
),

resolved as (
    select
        *,
        case when contact_known or stage_sends_letter then requested_channel else 'letter' end as channel,
        not contact_known and stage_sends_letter as skipped
    from requested
),

approvals as (
    -- what a message of this action is, unless a missing contact decides otherwise: it waits for
    -- approval when the stage requires it, or its ladder wants every letter approved and it sends one
    select
        *,
        case
            when $mode = 'replay' then 'simulated'
            when requires_approval
                or (letters_require_approval
                    and bool_or(channel in ('letter', 'registered_letter')) over (partition by action_id))
                then 'pending_approval'
            else 'planned'
        end as action_status
    from resolved
),

merged as (
    -- two channels falling back (email and sms) make a single letter
    select
        action_id,
        channel,
        any_value(action_status) as action_status,
        bool_and(skipped) as skipped,
        any_value(has_address) as has_address,
        string_agg(requested_channel, ',' order by position) filter (where requested_channel <> channel) as fallback_from
    from approvals
    group by action_id, channel
)

select
    action_id || '|' || channel as delivery_id,
    action_id,
    channel,
    case
        when skipped then 'skipped'
        when channel in ('letter', 'registered_letter') and not has_address then 'undeliverable'
        else action_status
    end as status,
    case
        when skipped then 'no ' || case channel when 'email' then 'email address' else 'phone number' end
            || ' for ' || channel || '; the stage already sends a letter'
        when channel in ('letter', 'registered_letter') and not has_address then
            'no postal address (street and city) for a ' || replace(channel, '_', ' ')
            || case when fallback_from is not null then ', the fallback for ' || replace(fallback_from, ',', ' and ') else '' end
    end as last_error,
    fallback_from,
    0 as attempts,
    cast($now as timestamp) as created_at,
    cast($now as timestamp) as updated_at
from merged
