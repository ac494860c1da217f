-- model: int_late_charge_claims
-- grain: one row per invoice to put on a statement of late-payment charges made on as_of: the
--        candidates (int_late_charge_candidates: settled late in the statement's window, not yet
--        charged) that nothing withholds (no dispute, no legal hold). Shaped as the charge macros'
--        claims (sql/macros/charges.sql): action_id = invoice_id, charged, open_amount,
--        days_past_due.
-- materialized: temp
-- depends: int_late_charge_candidates
with

candidates as (
    select *
    from int_late_charge_candidates
    where withheld_reason is null
)

select
    invoice_id as action_id,
    invoice_id,
    customer_id,
    currency,
    -- the day before the first day charged: the macros count late days from the day after it
    greatest(due_date, coalesce(stated_through, due_date)) as due_date,
    due_date as invoice_due_date,
    paid_on,
    amount,
    -- what is owed at as_of: nothing, or less than nothing when overpaid (the charge macros add back
    -- the payments after each period's start: the base is what was owed on each day)
    cast(amount - paid as decimal(18,2)) as open_amount,
    datediff('day', due_date, paid_on) as days_past_due,
    stated_through is null as owes_indemnity,
    true as charged,
    -- the unit's charge rule (int_late_charge_rules): interest from the day after the due date
    charge_kind,
    margin_points,
    indemnity,
    indemnity_currency,
    greatest(due_date, coalesce(stated_through, due_date)) + 1 as interest_from
from candidates
