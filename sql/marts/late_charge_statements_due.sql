-- model: late_charge_statements_due
-- grain: one row per unit (customer_id, currency) with invoices paid late to charge on as_of
--        (int_late_charge_invoices): the statement of the period $period, its totals and whether
--        it reaches the policy's min_total; units that already have this period's statement
--        (a live one, or any in a replay) are left out: a statement is made once
-- materialized: temp
with

invoices as (
    select * from int_late_charge_invoices
),

units as (
    select
        'LC|' || customer_id || '|' || currency || '|' || $period as statement_id,
        customer_id,
        currency,
        list(invoice_id order by due_date, invoice_id) as invoice_ids,
        cast(sum(interest_amount) as decimal(38,2)) as interest_amount,
        cast(sum(indemnity_amount) as decimal(38,2)) as indemnity_amount,
        any_value(indemnity_currency) as indemnity_currency,
        -- the unit's charge rule (its ladder's): the margin over the reference rate the statement states
        any_value(margin_points) as reference_margin
    from invoices
    group by customer_id, currency
),

made as (
    select statement_id
    from late_charge_statements
    where mode = 'live' or $mode = 'replay'
),

totals as (
    select
        *,
        -- the indemnity counts in the total when it is in the unit's currency (as on a formal notice)
        cast(
            interest_amount + case when indemnity_currency = currency then indemnity_amount else 0 end
            as decimal(38,2)
        ) as charges_total
    from units
    where statement_id not in (select statement_id from made)
)

select
    *,
    charges_total >= cast($min_total as decimal(18,2)) as reaches_min_total
from totals
