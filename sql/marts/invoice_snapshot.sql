-- model: invoice_snapshot
-- grain: one row per invoice open at as_of (open amount > 0 after payments and credits)
-- materialized: incremental_as_of
with

open_invoices as (
    select * from int_open_invoices where open_amount > 0
),

buckets as (
    select * from policy_buckets
),

invoice_holds as (
    select invoice_id, kind
    from int_active_holds
    where invoice_id is not null
    qualify row_number() over (partition by invoice_id order by kind_priority, hold_id) = 1
),

customer_holds as (
    -- a hold naming no invoice: the whole customer (source), or one of its currencies (outcome)
    select customer_id, currency, kind, kind_priority, hold_id
    from int_active_holds
    where invoice_id is null
),

aged as (
    select
        open_invoices.*,
        datediff('day', open_invoices.due_date, $as_of) as days_past_due
    from open_invoices
)

select
    $as_of as as_of,
    aged.invoice_id,
    aged.customer_id,
    aged.currency,
    aged.kind,
    aged.issue_date,
    aged.due_date,
    aged.amount,
    aged.open_amount,
    aged.days_past_due,
    buckets.name as bucket,
    invoice_holds.kind is not null or customer_holds.kind is not null as held,
    coalesce(invoice_holds.kind, customer_holds.kind) as hold_kind,
    case when invoice_holds.kind is not null then 'invoice'
         when customer_holds.kind is not null then 'customer' end as hold_scope
from aged
join buckets
    on (buckets.min_days is null or aged.days_past_due > buckets.min_days)
   and (buckets.max_days is null or aged.days_past_due <= buckets.max_days)
left join invoice_holds using (invoice_id)
left join customer_holds
    on customer_holds.customer_id = aged.customer_id
   and (customer_holds.currency is null or customer_holds.currency = aged.currency)
qualify row_number() over (partition by aged.invoice_id order by customer_holds.kind_priority, customer_holds.hold_id) = 1
