-- model: stg_invoices_checked
-- grain: one row per row of the invoices source (invoices and credit notes), valid or not
-- materialized: temp
with

source as (
    select * from raw_invoices
),

customers as (
    select customer_id from stg_customers
),

currencies as (
    select currency from seed_currencies
),

parsed as (
    select
        source.*,
        lower(coalesce(source.kind, 'invoice')) as kind_code,
        upper(coalesce(source.currency, 'EUR')) as currency_code
    from source
),

checked_row as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            is_missing('invoice_id', invoice_id),
            text_problem('invoice_id', invoice_id, 100),
            is_missing('customer_id', customer_id),
            case when customer_id is not null and customer_id not in (select customer_id from customers)
                then 'customer_id ''' || left(customer_id, 100) || ''' is not a known customer (absent from customers, or its row was rejected)' end,
            case when kind_code not in ('invoice', 'credit_note')
                then 'kind ''' || left(kind, 40) || ''' is not invoice or credit_note' end,
            is_missing('issue_date', issue_date),
            date_problem('issue_date', issue_date, $as_of),
            is_missing('due_date', due_date),
            date_problem('due_date', due_date, $as_of),
            case when try_cast(due_date as date) < try_cast(issue_date as date)
                then 'due_date ' || due_date || ' is before issue_date ' || issue_date end,
            is_missing('amount', amount),
            amount_problem('amount', amount),
            case when currency_code not in (select currency from currencies)
                then 'currency ''' || left(currency, 40) || ''' is not an ISO 4217 code (e.g. EUR, GBP)' end
        ), '') as row_problem
    from parsed
),

kept as (
    -- the first valid row of each id is kept (contract §1)
    select
        checked_row.*,
        min(_row_number) filter (where row_problem is null) over (partition by invoice_id) as kept_row
    from checked_row
),

checked as (
    select
        kept.*,
        nullif(concat_ws('; ', row_problem, duplicate_problem('invoice_id', invoice_id, _row_number, kept_row)), '')
            as reject_reason
    from kept
)

select
    invoice_id,
    customer_id,
    kind_code as kind,
    try_cast(issue_date as date) as issue_date,
    try_cast(due_date as date) as due_date,
    case when reject_reason is null then cast(amount as decimal(18,2)) end as amount,
    currency_code as currency,
    reject_reason,
    _source,
    _row_number,
    _land_row
from checked
