-- model: int_ladder_charge_periods
-- grain: one row per (charged action, claimed invoice, period) of the invoice's late days: from the
--        day after its due date to as_of, cut at 1 January and 1 July (each part at that
--        half-year's reference rate plus the margin) and at each payment naming the invoice (the
--        base lowers from its date) (sql/macros/charges.sql)
-- materialized: temp
-- macros: charges
-- depends: int_ladder_claims
select * from ladder_charge_periods('int_ladder_claims', $as_of, $days_in_year)
