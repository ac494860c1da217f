-- model: int_ladder_new_actions
-- grain: one row per action created on as_of (one step of one unit), with what it claims, its
--        status and, for charged stages, its late-payment charges
-- materialized: temp
with

steps as (
    select * from int_ladder_decisions where acts
),

stages as (
    select * from ladder_stages
),

claims as (
    select
        action_id,
        cast(sum(open_amount) as decimal(38,2)) as amount_due,
        list(invoice_id order by due_date, invoice_id) as invoice_ids
    from int_ladder_claims
    group by action_id
),

awaiting as (
    -- an action waits for approval when its stage requires it, or its ladder wants every letter
    -- approved and it sends one, and it has something to send (a formal notice that is
    -- undeliverable on every channel has nothing to approve)
    select
        action_id,
        bool_or(status in ('pending_approval', 'simulated')) as has_message,
        bool_or(channel in ('letter', 'registered_letter')) as sends_letter
    from int_ladder_deliveries
    group by action_id
),

ladders as (
    select * from ladder_defs
),

charges as (
    select
        action_id,
        cast(sum(interest_amount) as decimal(38,2)) as interest_amount,
        cast(sum(indemnity_amount) as decimal(38,2)) as indemnity_amount,
        any_value(indemnity_currency) as indemnity_currency
    from int_ladder_charges
    group by action_id
)

select
    steps.next_action_id as action_id,
    cast($as_of as date) as as_of,
    steps.customer_id,
    steps.currency,
    steps.episode_id,
    stages.stage,
    stages.stage_rank,
    steps.driving_invoice_id,
    steps.driving_days_past_due as days_past_due,
    claims.amount_due,
    claims.invoice_ids,
    case
        when $mode = 'replay' then 'simulated'
        when (stages.requires_approval or (ladders.letters_require_approval and awaiting.sends_letter))
            and awaiting.has_message then 'pending_approval'
        else 'planned'
    end as status,
    $mode as mode,
    (stages.requires_approval or (ladders.letters_require_approval and coalesce(awaiting.sends_letter, false)))
        and coalesce(awaiting.has_message, false) as requires_approval,
    charges.interest_amount,
    charges.indemnity_amount,
    charges.indemnity_currency,
    -- the indemnity is a fixed sum in its own currency: it joins the total only in that currency
    cast(
        charges.interest_amount
        + case when charges.indemnity_currency = steps.currency then charges.indemnity_amount else 0 end
        as decimal(38,2)
    ) as charges_total,
    cast($now as timestamp) as created_at,
    -- the ladder the unit climbed and the rule that chose it (ladder_rules; standard/default)
    steps.ladder,
    steps.ladder_rule,
    -- legal-rate charges: the first day of interest (the day after the formal notice)
    steps.legal_interest_from as interest_from
from steps
join stages on stages.ladder = steps.ladder and stages.stage_rank = steps.next_rank
join ladders on ladders.ladder = steps.ladder
join claims on claims.action_id = steps.next_action_id
left join charges on charges.action_id = steps.next_action_id
left join awaiting on awaiting.action_id = steps.next_action_id
