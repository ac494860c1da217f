-- report: aged_balance_by_customer
-- grain: one row per (customer_id, currency, bucket) of aged_balance on as_of, with the customer's name
-- used by: tasks/report.py (the Excel aged balance sheet, pivoted by bucket)
select
    aged.customer_id,
    customers.name,
    aged.currency,
    aged.bucket,
    aged.amount,
    aged.invoice_count
from aged_balance as aged
left join stg_customers as customers using (customer_id)
where aged.as_of = $as_of
order by aged.currency, aged.customer_id, aged.bucket
