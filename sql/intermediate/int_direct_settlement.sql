-- model: int_direct_settlement
-- grain: one row per invoice (kind 'invoice') issued on or before as_of that is not settled
--        exactly by the payments naming it: what they settle (up to its amount), what remains,
--        and the excess that joins the unit's credit pool. An invoice those payments settle
--        exactly (most of them) has nothing left to allocate and no row.
-- materialized: temp
-- macros: allocation
-- depends: int_invoices_as_of, int_payments_as_of
select * from allocation_direct_settlement('int_invoices_as_of', 'int_payments_as_of')
