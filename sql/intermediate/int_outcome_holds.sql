-- model: int_outcome_holds
-- grain: one row per hold a recorded outcome puts on as_of: a promise, a plan without invoices
--        and a "we paid" hold the unit (customer, currency: invoice_id null); a dispute, and a
--        plan naming invoices, hold those invoices only. Read beside the source's holds by
--        int_active_holds (origin 'outcome').
-- materialized: temp
with

holding as (
    select * from int_outcome_status where holding
),

unit_holds as (
    select outcome_id, customer_id, currency, cast(null as varchar) as invoice_id, kind, said_on, holds_until
    from holding
    where kind in ('promise', 'paid_claimed') or (kind = 'plan' and coalesce(len(invoice_ids), 0) = 0)
),

invoice_holds as (
    select outcome_id, customer_id, currency, unnest(invoice_ids) as invoice_id, kind, said_on, holds_until
    from holding
    where kind = 'dispute' or (kind = 'plan' and len(invoice_ids) > 0)
)

select
    outcome_id as hold_id,
    customer_id,
    invoice_id,
    currency,
    case kind when 'plan' then 'payment_plan' else kind end as kind,
    said_on as start_date,
    holds_until as end_date
from unit_holds
union all
select
    -- one hold per invoice: the outcome's id and the invoice (hold_id stays a key)
    outcome_id || '|' || invoice_id as hold_id,
    customer_id,
    invoice_id,
    currency,
    case kind when 'plan' then 'payment_plan' else kind end as kind,
    said_on as start_date,
    holds_until as end_date
from invoice_holds
