-- model: stg_holds_checked
-- grain: one row per row of the holds source, valid or not
-- materialized: temp
with

source as (
    -- an end date of 'infinity' (how PostgreSQL writes "no end") is an open-ended hold
    select * replace (
        case when lower(end_date) in ('infinity', '+infinity') then null else end_date end as end_date
    )
    from raw_holds
),

customers as (
    select customer_id from stg_customers
),

invoices as (
    select invoice_id, customer_id from stg_invoices
),

parsed as (
    select
        source.*,
        lower(source.kind) as kind_code,
        invoices.invoice_id is not null as invoice_found,
        invoices.customer_id as invoice_customer_id
    from source
    left join invoices on invoices.invoice_id = source.invoice_id
),

checked_row as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            is_missing('hold_id', hold_id),
            text_problem('hold_id', hold_id, 100),
            is_missing('customer_id', customer_id),
            case when customer_id is not null and customer_id not in (select customer_id from customers)
                then 'customer_id ''' || left(customer_id, 100) || ''' is not a known customer (absent from customers, or its row was rejected)' end,
            case when invoice_id is not null and not invoice_found
                then 'invoice_id ''' || left(invoice_id, 100) || ''' is not a known invoice; leave it empty to hold the whole customer' end,
            case when invoice_found and invoice_customer_id <> customer_id
                then 'invoice ' || invoice_id || ' belongs to customer ' || invoice_customer_id || ', not ' || customer_id end,
            is_missing('kind', kind),
            case when kind_code not in ('dispute', 'promise', 'payment_plan', 'legal', 'other')
                then 'kind ''' || left(kind, 40) || ''' is not one of dispute, promise, payment_plan, legal, other' end,
            is_missing('start_date', start_date),
            date_problem('start_date', start_date, $as_of),
            date_problem('end_date', end_date, $as_of),
            case when try_cast(end_date as date) < try_cast(start_date as date)
                then 'end_date ' || end_date || ' is before start_date ' || start_date end
        ), '') as row_problem
    from parsed
),

kept as (
    -- the first valid row of each id is kept (contract §1)
    select
        checked_row.*,
        min(_row_number) filter (where row_problem is null) over (partition by hold_id) as kept_row
    from checked_row
),

checked as (
    select
        kept.*,
        nullif(concat_ws('; ', row_problem, duplicate_problem('hold_id', hold_id, _row_number, kept_row)), '')
            as reject_reason
    from kept
)

select
    hold_id,
    customer_id,
    invoice_id,
    kind_code as kind,
    try_cast(start_date as date) as start_date,
    try_cast(end_date as date) as end_date,
    reject_reason,
    _source,
    _row_number,
    _land_row
from checked
