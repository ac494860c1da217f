-- model: credit_watch
-- grain: one row per unit (customer_id, currency) the ERP should hold new orders for at as_of:
--        its risk class is one the policy watches (credit_watch.classes, default D), an
--        invoice of it is overdue more than credit_watch.max_days_past_due days, or (when
--        credit_watch.broken_plans) its latest payment plan said by as_of is broken at as_of and
--        broke in the 12 months up to as_of (docs/metrics.md "Credit watch"); from
--        debtor_profile of as_of and int_outcome_status of as_of
-- materialized: incremental_as_of
with

profiles as (
    select * from debtor_profile where as_of = cast($as_of as date)
),

plans as (
    select customer_id, currency, said_on, status, broken_on
    from int_outcome_status
    where kind = 'plan'
),

broken_plans as (
    -- the unit's latest plan (a later one supersedes it) is broken, within the 12 months
    select customer_id, currency
    from plans
    where $watch_broken_plans
    qualify
        row_number() over (partition by customer_id, currency order by said_on desc) = 1
        and status = 'broken'
        and broken_on > cast(cast($as_of as date) - interval 12 month as date)
),

flagged as (
    select
        profiles.*,
        list_contains($watch_classes, profiles.risk_class) as by_class,
        coalesce(profiles.max_days_past_due > $watch_max_days_past_due, false) as by_overdue,
        broken_plans.customer_id is not null as by_plan
    from profiles
    left join broken_plans
        on profiles.customer_id = broken_plans.customer_id
       and profiles.currency = broken_plans.currency
)

select
    as_of,
    customer_id,
    currency,
    risk_class,
    score,
    overdue_amount,
    max_days_past_due,
    concat_ws(
        ',', case when by_class then 'class' end, case when by_overdue then 'overdue' end,
        case when by_plan then 'plan' end
    ) as reasons
from flagged
where by_class or by_overdue or by_plan
