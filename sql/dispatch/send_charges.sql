-- model: send_charges
-- grain: one row per (charged action of the batch, claimed overdue invoice): the interest to the
--        send date $as_of and the indemnity, by the ladder's own rules (int_ladder_charges,
--        sql/macros/charges.sql) on the send date's claims (send_claims)
-- materialized: temp
-- macros: charges
-- depends: send_claims, send_charge_periods
select * from ladder_charges('send_claims', 'send_charge_periods', $days_in_year)
