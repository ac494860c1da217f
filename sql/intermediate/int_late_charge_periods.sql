-- model: int_late_charge_periods
-- grain: one row per (invoice paid late to charge, period of its late days at one base and one
--        rate): the ladder's own rules (sql/macros/charges.sql: half-years, each payment lowering
--        the base from its date) on int_late_charge_claims, from the day after its due date (or
--        after a sent notice's figures) to the day before the payment that settled it — the days
--        from that payment on have no base left and no row
-- materialized: temp
-- macros: charges
-- depends: int_late_charge_claims
with

periods as (
    select * from ladder_charge_periods('int_late_charge_claims', $as_of, $days_in_year)
)

select *
from periods
where open_amount > 0
