-- model: int_late_charge_invoices
-- grain: one row per invoice paid late to charge (int_late_charge_claims): its interest rounded
--        half-up to the cent (sql/macros/charges.sql, ladder_charges) and the fixed indemnity,
--        unless a sent formal notice or litigation action already claimed it
-- materialized: temp
-- macros: charges
-- depends: int_late_charge_claims, int_late_charge_periods
with

claims as (
    select * from int_late_charge_claims
),

charges as (
    select *
    from ladder_charges('int_late_charge_claims', 'int_late_charge_periods', $days_in_year)
)

select
    claims.invoice_id,
    claims.customer_id,
    claims.currency,
    claims.invoice_due_date as due_date,
    claims.paid_on,
    claims.amount,
    cast(claims.days_past_due as integer) as days_late,
    claims.due_date + 1 as interest_from,
    charges.interest_amount,
    cast(case when claims.owes_indemnity then charges.indemnity_amount else 0 end as decimal(18,2)) as indemnity_amount,
    charges.indemnity_currency,
    claims.margin_points
from claims
join charges using (invoice_id)
