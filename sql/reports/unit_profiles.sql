-- report: unit_profiles
-- grain: one row per unit (customer_id, currency) of debtor_profile of as_of: its class, score,
--        broken promises and disputes (docs/metrics.md "Debtor profile")
-- used by: tasks/report/workbook.py (the profile columns of the sheet "Debtors")
select
    customer_id,
    currency,
    risk_class,
    score,
    broken_promises,
    disputes
from debtor_profile
where as_of = $as_of
