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
        a.interest_amount is not null or a.indemnity_amount is not null as charged_action
    from dunning_actions a
    join batch using (action_id)
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
        and datediff('day', snapshot.due_date, cast($as_of as date)) > 0 as charged
from claimed
join snapshot on snapshot.invoice_id = claimed.invoice_id
