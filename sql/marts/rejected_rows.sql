-- model: rejected_rows
-- grain: one row per source row not loaded (action 'rejected') or loaded without a malformed
--        optional contact (action 'field_dropped'), for the run date
-- materialized: incremental_as_of
with

structural as (
    select source, entity, row_number, raw, reason, 'rejected' as action
    from raw_structural_rejects
),

row_rejects as (
    select _source as source, 'customers' as entity, _row_number as row_number, _raw as raw, reject_reason as reason, 'rejected' as action
    from stg_customers_checked where reject_reason is not null
    union all
    select _source, 'customers', _row_number, _raw, dropped_fields, 'field_dropped'
    from stg_customers_checked where reject_reason is null and dropped_fields is not null
    union all
    select _source, 'invoices', _row_number, _raw, reject_reason, 'rejected'
    from stg_invoices_checked where reject_reason is not null
    union all
    select _source, 'payments', _row_number, _raw, reject_reason, 'rejected'
    from stg_payments_checked where reject_reason is not null
    union all
    select _source, 'holds', _row_number, _raw, reject_reason, 'rejected'
    from stg_holds_checked where reject_reason is not null
)

select
    $as_of as as_of,
    $loaded_at as loaded_at,
    source,
    entity,
    row_number,
    raw,
    reason,
    action
from (select * from structural union all select * from row_rejects)
order by entity, row_number
