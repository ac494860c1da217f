-- model: send_claims
-- grain: one row per (action of a delivery in the batch, invoice it claims that is still open
--        and unheld on the send date $as_of): what a message says is true on the day it leaves
--        (contract §3 "What a message says"). Open amounts and holds are those of $as_of
--        (dispatch_snapshot: tonight's invoice_snapshot, as the nightly ages before it dispatches);
--        days late are counted to $as_of. An action dated $as_of keeps the figures the ladder decided (the same day's).
--        The ladder's own charge models (int_ladder_charge_periods, int_ladder_charges) then
--        recompute the late-payment charges of the `charged` rows to $as_of, unchanged.
-- materialized: temp
with

batch as (
    select distinct d.action_id
    from dispatch_batch b
    join deliveries d using (delivery_id)
),

actions as (
    select
        a.action_id,
        a.as_of as decided_on,
        a.customer_id,
        a.currency,
        a.invoice_ids,
        -- the ladder stated charges on this action (a charged stage and segment)
        a.interest_amount is not null or a.indemnity_amount is not null as charged_action,
        -- its ladder's charge rule (actions from before ladders: the standard ladder's)
        ladders.charge_kind,
        ladders.margin_points,
        ladders.indemnity,
        ladders.indemnity_currency,
        -- legal-rate interest: from the day after the formal notice; the notice itself, sent on
        -- $as_of, has none accrued yet
        case when coalesce(notice.legal_notice, false) then cast($as_of as date) + 1 else a.interest_from end
            as legal_interest_from
    from dunning_actions a
    join batch using (action_id)
    join ladder_defs as ladders on ladders.ladder = coalesce(a.ladder, 'standard')
    left join (select distinct stage, legal_notice from ladder_stages) as notice on notice.stage = a.stage
),

claimed as (
    select actions.*, unnest(actions.invoice_ids) as invoice_id
    from actions
),

snapshot as (
    -- the claimed invoices open on $as_of (temp table dispatch_snapshot, built by dispatch from
    -- tonight's invoice_snapshot, or by the aging models for $as_of when there is none)
    select s.*
    from dispatch_snapshot s
    where s.open_amount > 0
      and not coalesce(s.held, false)
)

select
    claimed.action_id,
    claimed.customer_id,
    claimed.currency,
    claimed.decided_on,
    cast($as_of as date) as figures_as_of,
    claimed.decided_on <> cast($as_of as date) as recomputed,
    snapshot.invoice_id,
    snapshot.kind,
    snapshot.issue_date,
    snapshot.due_date,
    snapshot.amount,
    snapshot.open_amount,
    datediff('day', snapshot.due_date, cast($as_of as date)) as days_past_due,
    -- read by the ladder's charge models: only the actions sent after the day they were decided
    claimed.charged_action
        and claimed.decided_on <> cast($as_of as date)
        and datediff('day', snapshot.due_date, cast($as_of as date)) > 0 as charged,
    claimed.charge_kind,
    claimed.margin_points,
    claimed.indemnity,
    claimed.indemnity_currency,
    case when claimed.charge_kind = 'legal_rate'
        then greatest(coalesce(claimed.legal_interest_from, cast($as_of as date) + 1), snapshot.due_date + 1)
        else snapshot.due_date + 1 end as interest_from
from claimed
join snapshot on snapshot.invoice_id = claimed.invoice_id
