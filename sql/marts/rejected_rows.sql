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
    -- raw: the row as read from the source (land_<entity>, row _land_row), as JSON
    select checked._source as source, 'customers' as entity, checked._row_number as row_number,
           cast(to_json(land) as varchar) as raw, checked.reject_reason as reason, 'rejected' as action
    from stg_customers_checked as checked
    left join land_customers as land on land.rowid = checked._land_row
    where checked.reject_reason is not null
    union all
    select checked._source, 'customers', checked._row_number, cast(to_json(land) as varchar), checked.dropped_fields, 'field_dropped'
    from stg_customers_checked as checked
    left join land_customers as land on land.rowid = checked._land_row
    where checked.reject_reason is null and checked.dropped_fields is not null
    union all
    select checked._source, 'invoices', checked._row_number, cast(to_json(land) as varchar), checked.reject_reason, 'rejected'
    from stg_invoices_checked as checked
    left join land_invoices as land on land.rowid = checked._land_row
    where checked.reject_reason is not null
    union all
    select checked._source, 'payments', checked._row_number, cast(to_json(land) as varchar), checked.reject_reason, 'rejected'
    from stg_payments_checked as checked
    left join land_payments as land on land.rowid = checked._land_row
    where checked.reject_reason is not null
    union all
    select checked._source, 'holds', checked._row_number, cast(to_json(land) as varchar), checked.reject_reason, 'rejected'
    from stg_holds_checked as checked
    left join land_holds as land on land.rowid = checked._land_row
    where checked.reject_reason is not null
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
