-- model: debtor_profile
-- grain: one row per unit (customer_id, currency) with an invoice issued on or before as_of: its
--        payment behaviour as the source knew it at as_of (invoices paid in the 12 months up to
--        as_of, what is open and overdue at as_of), a score 0–100 and a class A–D, or `new`
--        (docs/metrics.md "Debtor profile"; thresholds in the policy, `debtor_profile`)
-- materialized: incremental_as_of
-- depends: int_payments_as_of
-- macros: settlement
--
-- Reads the point-in-time source of as_of (int_invoices_as_of, int_payments_as_of), the open
-- amounts at as_of of the metrics' allocation (int_metrics_open_at) and the outcomes said by as_of
-- with their status at as_of (int_outcome_status: broken promises and plans, disputes). Exact arithmetic: amounts in
-- integer cents, every quotient rounded half-up with integer division, never a binary float.
with

d as (
    select
        cast($as_of as date) as as_of,
        cast(cast($as_of as date) - interval 12 month as date) as year_ago,
        cast(cast($as_of as date) - interval 3 month as date) as quarter_ago
),

invoices as (
    select invoice_id, customer_id, currency, due_date, amount
    from int_invoices_as_of
    where kind = 'invoice'
),

open_at as (
    select customer_id, currency, open_amount, days_past_due
    from int_metrics_open_at
    where at_date = cast($as_of as date)
),

outcome_status as (
    select customer_id, currency, kind, said_on, hold_until, broken_on, status, resolution
    from int_outcome_status
    where kind in ('promise', 'plan', 'dispute')
),

-- ---------------------------------------------------------------- when each invoice was paid
settled as (
    -- an invoice is paid on the date the payments naming it reach its amount (sql/macros/settlement.sql),
    -- here in the last 12 months
    select invoice_id, paid_on as paid_date
    from invoice_settlements(
        'int_invoices_as_of', 'int_payments_as_of', cast(cast($as_of as date) - interval 12 month as date) + 1, null
    )
),

paid as (
    select
        invoices.customer_id,
        invoices.currency,
        cast(cast(invoices.amount as decimal(38, 2)) * 100 as hugeint) as cents,
        greatest(0, datediff('day', invoices.due_date, settled.paid_date)) as days_late,
        settled.paid_date > d.quarter_ago as last_3_months
    from settled
    join invoices using (invoice_id)
    cross join d
    where settled.paid_date > d.year_ago
),

-- ---------------------------------------------------------------- per unit
units as (
    select distinct customer_id, currency from invoices
),

behaviour as (
    select
        customer_id,
        currency,
        count(*) as paid_invoices,
        count(*) filter (where days_late > 0) as paid_late,
        count(*) filter (where days_late > 30) as paid_late_30,
        sum(cents) as paid_cents,
        sum(cents * days_late) as cent_days,
        sum(cents) filter (where last_3_months) as cents_3m,
        sum(cents * days_late) filter (where last_3_months) as cent_days_3m,
        sum(cents) filter (where not last_3_months) as cents_9m,
        sum(cents * days_late) filter (where not last_3_months) as cent_days_9m
    from paid
    group by customer_id, currency
),

exposure as (
    select
        customer_id,
        currency,
        sum(cast(cast(open_amount as decimal(38, 2)) * 100 as hugeint)) as open_cents,
        coalesce(sum(cast(cast(open_amount as decimal(38, 2)) * 100 as hugeint)) filter (where days_past_due > 0), 0) as overdue_cents,
        max(days_past_due) filter (where days_past_due > 0) as max_days_past_due
    from open_at
    group by customer_id, currency
),

what_was_said as (
    -- the 12 months up to as_of: promises and plans broken (a promise on the day after its date +
    -- grace, a plan on the day after the missed instalment's grace: only once broken by as_of), and
    -- disputes said, but for those resolved `credit_note_expected` by as_of (the debtor was right)
    select
        outcome_status.customer_id,
        outcome_status.currency,
        count(*) filter (
            where outcome_status.kind in ('promise', 'plan') and outcome_status.status = 'broken'
            and coalesce(outcome_status.broken_on, outcome_status.hold_until + 1) > d.year_ago
        ) as broken_promises,
        count(*) filter (
            where outcome_status.kind = 'dispute' and outcome_status.said_on > d.year_ago
            and coalesce(outcome_status.resolution, '') <> 'credit_note_expected'
        ) as disputes
    from outcome_status
    cross join d
    group by outcome_status.customer_id, outcome_status.currency
),

measured as (
    -- quotients n / q to 2 decimals, half-up: (200 n + q) // 2q hundredths
    select
        units.customer_id,
        units.currency,
        coalesce(behaviour.paid_invoices, 0) as paid_invoices,
        coalesce(behaviour.paid_late, 0) as paid_late,
        coalesce(behaviour.paid_late_30, 0) as paid_late_30,
        cast(coalesce(behaviour.paid_cents, 0) as decimal(38,0)) * 0.01 as paid_amount,
        cast((200 * behaviour.cent_days + behaviour.paid_cents) // (2 * behaviour.paid_cents) as decimal(38,0)) * 0.01
            as avg_days_late,
        cast((20000 * behaviour.paid_late + behaviour.paid_invoices) // (2 * behaviour.paid_invoices) as decimal(38,0)) * 0.01
            as share_paid_late,
        cast((20000 * behaviour.paid_late_30 + behaviour.paid_invoices) // (2 * behaviour.paid_invoices) as decimal(38,0)) * 0.01
            as share_paid_late_30,
        cast((200 * behaviour.cent_days_3m + behaviour.cents_3m) // (2 * behaviour.cents_3m) as decimal(38,0)) * 0.01
            as avg_days_late_3m,
        cast((200 * behaviour.cent_days_9m + behaviour.cents_9m) // (2 * behaviour.cents_9m) as decimal(38,0)) * 0.01
            as avg_days_late_prev_9m,
        cast(coalesce(exposure.open_cents, 0) as decimal(38,0)) * 0.01 as open_amount,
        cast(coalesce(exposure.overdue_cents, 0) as decimal(38,0)) * 0.01 as overdue_amount,
        case when exposure.open_cents > 0 then
            cast((20000 * exposure.overdue_cents + exposure.open_cents) // (2 * exposure.open_cents) as decimal(38,0)) * 0.01
        else 0 end as overdue_share,
        exposure.max_days_past_due,
        coalesce(what_was_said.broken_promises, 0) as broken_promises,
        coalesce(what_was_said.disputes, 0) as disputes
    from units
    left join behaviour using (customer_id, currency)
    left join exposure using (customer_id, currency)
    left join what_was_said using (customer_id, currency)
),

scored as (
    select
        *,
        avg_days_late_3m - avg_days_late_prev_9m as trend_days,
        -- penalty points: days late (1 a day, up to 40), share paid late (up to 20), share paid
        -- more than 30 days late (up to 20), share of the open amount overdue (up to 10),
        -- worsening trend (half a point a day, up to 10), broken promises and plans (10 points
        -- each, up to 30), disputes not upheld (5 points each, up to 15)
        100
        - least(avg_days_late, 40)
        - share_paid_late * 0.20
        - share_paid_late_30 * 0.20
        - overdue_share * 0.10
        - least(greatest(coalesce(avg_days_late_3m - avg_days_late_prev_9m, 0), 0) * 0.5, 10)
        - least(10 * broken_promises, 30)
        - least(5 * disputes, 15) as raw_score
    from measured
)

select
    cast($as_of as date) as as_of,
    customer_id,
    currency,
    paid_invoices,
    paid_late,
    paid_late_30,
    cast(paid_amount as decimal(38,2)) as paid_amount,
    cast(avg_days_late as decimal(18,2)) as avg_days_late,
    cast(share_paid_late as decimal(9,2)) as share_paid_late,
    cast(share_paid_late_30 as decimal(9,2)) as share_paid_late_30,
    cast(avg_days_late_3m as decimal(18,2)) as avg_days_late_3m,
    cast(avg_days_late_prev_9m as decimal(18,2)) as avg_days_late_prev_9m,
    cast(trend_days as decimal(18,2)) as trend_days,
    cast(open_amount as decimal(38,2)) as open_amount,
    cast(overdue_amount as decimal(38,2)) as overdue_amount,
    cast(overdue_share as decimal(9,2)) as overdue_share,
    max_days_past_due,
    broken_promises,
    disputes,
    case when paid_invoices >= $min_paid_invoices
         then cast(round(greatest(raw_score, 0), 0) as integer) end as score,
    case
        when paid_invoices < $min_paid_invoices then 'new'
        when round(greatest(raw_score, 0), 0) >= $class_a_min_score then 'A'
        when round(greatest(raw_score, 0), 0) >= $class_b_min_score then 'B'
        when round(greatest(raw_score, 0), 0) >= $class_c_min_score then 'C'
        else 'D'
    end as risk_class,
    cast($built_by_run as varchar) as built_by_run
from scored
