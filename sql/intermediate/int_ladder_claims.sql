-- model: int_ladder_claims
-- grain: one row per (new action, invoice it claims): stages before and on the due date claim the
--        unit's open unheld invoices from the first stage's offset on; later stages claim only
--        the overdue ones (a formal notice never demands a sum not yet due)
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

invoices as (
    select * from int_ladder_invoices where not invoice_held
)

select
    steps.next_action_id as action_id,
    steps.customer_id,
    steps.currency,
    stages.stage,
    invoices.invoice_id,
    invoices.due_date,
    invoices.open_amount,
    invoices.days_past_due,
    -- late-payment charges: charged stages, the ladder's charge rule (for its segments), overdue invoices
    stages.charged
        and ladders.charge_kind <> 'none'
        and (ladders.charge_segments is null or list_contains(ladders.charge_segments, steps.segment))
        and invoices.days_past_due > 0 as charged,
    ladders.charge_kind,
    ladders.margin_points,
    ladders.indemnity,
    ladders.indemnity_currency,
    -- the first day of interest: the day after the due date (commercial), or after the formal notice
    -- (legal rate; the notice itself: none accrued)
    case when ladders.charge_kind = 'legal_rate' then greatest(steps.legal_interest_from, invoices.due_date + 1)
         else invoices.due_date + 1 end as interest_from
from steps
join stages on stages.ladder = steps.ladder and stages.stage_rank = steps.next_rank
join ladders on ladders.ladder = steps.ladder
join invoices
    on invoices.customer_id = steps.customer_id
   and invoices.currency = steps.currency
where case when stages.claims_overdue_only then invoices.days_past_due > 0
           else invoices.days_past_due >= ladders.first_offset end
