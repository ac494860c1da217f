-- model: credit_watch
-- grain: one row per unit (customer_id, currency) the ERP should hold new orders for at as_of:
--        its risk class is one the policy watches (credit_watch.classes, default D), or an
--        invoice of it is overdue more than credit_watch.max_days_past_due days
--        (docs/metrics.md "Credit watch"); from debtor_profile of as_of
-- materialized: incremental_as_of
with

profiles as (
    select * from debtor_profile where as_of = cast($as_of as date)
),

flagged as (
    select
        *,
        list_contains($watch_classes, risk_class) as by_class,
        coalesce(max_days_past_due > $watch_max_days_past_due, false) as by_overdue
    from profiles
)

select
    as_of,
    customer_id,
    currency,
    risk_class,
    score,
    overdue_amount,
    max_days_past_due,
    concat_ws(',', case when by_class then 'class' end, case when by_overdue then 'overdue' end) as reasons
from flagged
where by_class or by_overdue
