-- model: int_credit_pool
-- grain: one row per unit (customer_id, currency) with credit: credit notes, payments on
--        account, payments naming an invoice not yet issued at as_of, and direct excesses
-- materialized: temp
-- macros: allocation
-- depends: int_invoices_as_of, int_payments_as_of, int_direct_settlement
select * from allocation_credit_pool('int_invoices_as_of', 'int_payments_as_of', 'int_direct_settlement')
