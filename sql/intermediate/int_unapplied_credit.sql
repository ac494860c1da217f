-- model: int_unapplied_credit
-- grain: one row per unit whose credit pool exceeds all its remaining invoices at as_of
-- materialized: temp
-- macros: allocation
-- depends: int_credit_pool, int_direct_settlement
select * from allocation_unapplied_credit('int_credit_pool', 'int_direct_settlement')
