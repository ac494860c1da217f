-- model: int_ladder_charges
-- grain: one row per (charged action, claimed overdue invoice): the interest of all its late
--        days rounded half-up to the cent, and the fixed recovery indemnity (sql/macros/charges.sql)
-- materialized: temp
-- macros: charges
-- depends: int_ladder_claims, int_ladder_charge_periods
select * from ladder_charges('int_ladder_claims', 'int_ladder_charge_periods', $days_in_year)
