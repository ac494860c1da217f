-- model: int_open_invoices
-- grain: one row per invoice with something left after direct payments, with its open amount
--        once the unit's credit pool has settled the unit's invoices oldest first,
--        ordered by (due_date, issue_date, invoice_id)
-- materialized: temp
-- macros: allocation
-- depends: int_direct_settlement, int_credit_pool
select * from allocation_open_invoices('int_direct_settlement', 'int_credit_pool')
