-- model: stg_payments_checked
-- grain: one row per row of the payments source, valid or not
-- materialized: temp
with

source as (
    select * from raw_payments
),

customers as (
    select customer_id from stg_customers
),

invoices as (
    select invoice_id, customer_id, currency, kind from stg_invoices
),

currencies as (
    select currency from seed_currencies
),

parsed as (
    select
        source.*,
        upper(coalesce(source.currency, 'EUR')) as currency_code,
        invoices.invoice_id is not null as invoice_found,
        invoices.customer_id as invoice_customer_id,
        invoices.currency as invoice_currency,
        invoices.kind as invoice_kind
    from source
    left join invoices on invoices.invoice_id = source.invoice_id
),

checked_row as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            is_missing('payment_id', payment_id),
            text_problem('payment_id', payment_id, 100),
            is_missing('customer_id', customer_id),
            case when customer_id is not null and customer_id not in (select customer_id from customers)
                then 'customer_id ''' || left(customer_id, 100) || ''' is not a known customer (absent from customers, or its row was rejected)' end,
            case when invoice_id is not null and not invoice_found
                then 'invoice_id ''' || left(invoice_id, 100) || ''' is not a known invoice (absent from invoices, or its row was rejected); leave it empty for a payment on account' end,
            case when invoice_found and invoice_customer_id <> customer_id
                then 'invoice ' || invoice_id || ' belongs to customer ' || invoice_customer_id || ', not ' || customer_id end,
            case when invoice_found and invoice_currency <> currency_code
                then 'invoice ' || invoice_id || ' is in ' || invoice_currency || ', the payment in ' || currency_code end,
            case when invoice_found and invoice_kind = 'credit_note'
                then 'invoice_id ' || invoice_id || ' is a credit note; a payment settles an invoice' end,
            is_missing('paid_date', paid_date),
            date_problem('paid_date', paid_date, $as_of),
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
        min(_row_number) filter (where row_problem is null) over (partition by payment_id) as kept_row
    from checked_row
),

checked as (
    select
        kept.*,
        nullif(concat_ws('; ', row_problem, duplicate_problem('payment_id', payment_id, _row_number, kept_row)), '')
            as reject_reason
    from kept
)

select
    payment_id,
    customer_id,
    invoice_id,
    try_cast(paid_date as date) as paid_date,
    case when reject_reason is null then cast(amount as decimal(18,2)) end as amount,
    currency_code as currency,
    reject_reason,
    _source,
    _row_number,
    _land_row
from checked
