-- model: int_metrics_claims_open_at
-- grain: one row per (at_date, invoice) that a measured action (int_metrics_actions) claims, on
--        the action's date or 30 days later, open at at_date, with its open amount then
-- materialized: temp
--
-- Read from the invoice_snapshot of at_date when the caller wrote it from this same staging
-- (metrics_snapshot_dates), else from the date-stamped allocation (int_metrics_allocated).
-- Invoice ids are unique in the source (and an action claims invoices of its own unit): the
-- row is found by (at_date, invoice_id).
with

claimed as (
    select action_date as at_date, unnest(invoice_ids) as invoice_id from int_metrics_actions
    union
    select action_date + 30 as at_date, unnest(invoice_ids) as invoice_id from int_metrics_actions
),

snapshot_dates as (
    select at_date from metrics_snapshot_dates
),

allocated as (
    select allocated.at_date, allocated.invoice_id, allocated.open_amount
    from int_metrics_allocated as allocated
    semi join claimed using (at_date, invoice_id)
),

from_snapshot as (
    select snapshot.as_of as at_date, snapshot.invoice_id, snapshot.open_amount
    from invoice_snapshot as snapshot
    semi join (select * from claimed where at_date in (select at_date from snapshot_dates)) as claimed
        on claimed.at_date = snapshot.as_of
       and claimed.invoice_id = snapshot.invoice_id
)

select * from allocated
union all
select * from from_snapshot
