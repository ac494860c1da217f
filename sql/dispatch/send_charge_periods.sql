-- model: send_charge_periods
-- grain: one row per (charged action of the batch, claimed invoice, period: half-year, payment) of its
--        late days up to the send date $as_of: the ladder's own rules (int_ladder_charge_periods,
--        sql/macros/charges.sql) on the send date's claims (send_claims)
-- materialized: temp
-- macros: charges
-- depends: send_claims
select * from ladder_charge_periods('send_claims', $as_of, $days_in_year)
