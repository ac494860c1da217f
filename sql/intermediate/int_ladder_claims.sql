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
    -- late-payment charges: charged stages, charged segments, overdue invoices
    stages.charged
        and list_contains($charge_segments, steps.segment)
        and invoices.days_past_due > 0 as charged
from steps
join stages on stages.stage_rank = steps.next_rank
join invoices
    on invoices.customer_id = steps.customer_id
   and invoices.currency = steps.currency
where case when stages.claims_overdue_only then invoices.days_past_due > 0
           else invoices.days_past_due >= $first_offset end
