-- model: recovery_metric_parts
-- grain: one row per (currency, metric, dimension, dimension_value) on as_of — and, for a median
--        (kind 'median'), one row per distinct value (num) with its count (den)
-- materialized: incremental_as_of
--
-- The additive terms of recovery_metrics (docs/metrics.md "Fleet"): every metric as sums and counts
-- (kind 'value': num; kind 'ratio': num / den × factor; kind 'median': the histogram of the values).
-- Terms of disjoint sets of customers add up: recovery_metrics sums them by key, then divides and
-- rounds — on one database, or on the parts of every shard of a fleet (tasks/fleet/merge.py).
-- The hold shares by kind are not stored: recovery_metrics divides overdue_held by kind by the
-- total overdue of overdue_held_share 'all' (a shard without a kind still counts in its total).
--
-- Every term is computed from the source as of its own date: the open amounts at as_of,
-- as_of − 30 and as_of − 90 come from int_metrics_open_at, and those at each measured action's
-- date and 30 days later from int_metrics_claims_open_at (the nightly allocation rules, run again
-- at those dates, or read from that date's invoice_snapshot when this same staging wrote it),
-- whether or not a run happened on them. Ratios are exact decimal arithmetic rounded half away from zero to
-- 4 decimals (never binary floats); a ratio whose denominator is zero (or has no data) is absent.
with

d as (
    select cast($as_of as date) as as_of
),

currencies as (
    select distinct currency from stg_invoices where issue_date <= $as_of
    union
    select distinct currency from stg_payments where paid_date <= $as_of
),

buckets as (
    select * from policy_buckets
),

-- ---------------------------------------------------------------- the terms of §5, per currency
open_at as (
    select * from int_metrics_open_at
),

ar as (
    select
        currencies.currency,
        coalesce(sum(open_at.open_amount) filter (where open_at.at_date = d.as_of), 0) as ar_d,
        coalesce(sum(open_at.open_amount) filter (where open_at.at_date = d.as_of and open_at.days_past_due <= 0), 0) as current_ar_d,
        coalesce(sum(open_at.open_amount) filter (where open_at.at_date = d.as_of and open_at.days_past_due > 0), 0) as overdue_ar_d,
        coalesce(sum(open_at.open_amount) filter (where open_at.at_date = d.as_of - 30), 0) as ar_d_minus_30
    from currencies
    cross join d
    left join open_at on open_at.currency = currencies.currency
    group by currencies.currency
),

credit as (
    select currency, sum(unapplied_credit) as unapplied_credit
    from int_metrics_credit_at, d
    where at_date = d.as_of
    group by currency
),

sales as (
    select
        currency,
        sum(amount) filter (where issue_date > d.as_of - 90) as sales_90d,
        sum(amount) filter (where issue_date > d.as_of - 30) as sales_30d
    from stg_invoices, d
    where kind = 'invoice' and issue_date > d.as_of - 90 and issue_date <= d.as_of
    group by currency
),

collected as (
    select currency, sum(amount) as collected_30d
    from stg_payments, d
    where paid_date > d.as_of - 30 and paid_date <= d.as_of
    group by currency
),

terms as (
    select
        ar.*,
        coalesce(credit.unapplied_credit, 0) as unapplied_credit,
        coalesce(sales.sales_90d, 0) as sales_90d,
        coalesce(sales.sales_30d, 0) as sales_30d,
        coalesce(collected.collected_30d, 0) as collected_30d
    from ar
    left join credit using (currency)
    left join sales using (currency)
    left join collected using (currency)
),

by_bucket as (
    select
        currencies.currency,
        buckets.name as bucket,
        buckets.max_days is null or buckets.max_days > 0 as holds_overdue_days,
        coalesce(sum(open_at.open_amount), 0) as open_amount,
        coalesce(sum(open_at.open_amount) filter (where open_at.days_past_due > 0), 0) as overdue_amount
    from currencies
    cross join buckets
    cross join d
    left join open_at
        on open_at.currency = currencies.currency
       and open_at.at_date = d.as_of
       and open_at.bucket = buckets.name
    group by currencies.currency, buckets.name, buckets.max_days
),

-- ---------------------------------------------------------------- recovery after dunning actions
every_recovery as (
    -- real (mode live) and replayed (mode replay: a backfill's simulated) actions
    select * from int_metrics_action_recovery
),

recovery as (
    -- the recovery rates by stage, channel and segment count real actions only
    select * from every_recovery where mode = 'live'
),

recovery_by_channel as (
    select recovery.*, unnest(recovery.delivered_channels) as channel
    from recovery
),

-- ---------------------------------------------------------------- recovery of overdue amounts by age
age_start as (
    -- invoices overdue at the start of a 30- or 90-day window, and what is left of them on as_of
    select
        windows.days as window_days,
        start.currency,
        start.bucket,
        start.bucket_position,
        start.open_amount as open_at_start,
        coalesce(now_.open_amount, 0) as open_now
    from (select unnest([30, 90]) as days) as windows
    cross join d
    join open_at as start
        on start.at_date = d.as_of - windows.days
       and start.days_past_due > 0
    left join open_at as now_
        on now_.at_date = d.as_of
       and now_.invoice_id = start.invoice_id  -- invoice ids are unique in the source
),

-- ---------------------------------------------------------------- holds, ladder, the day's actions
snapshot as (
    select * from invoice_snapshot where as_of = $as_of
),

units as (
    select * from unit_stage where as_of = $as_of
),

day_actions as (
    select * from dunning_actions where as_of = $as_of
),

day_deliveries as (
    select deliveries.*, day_actions.currency
    from deliveries
    join day_actions using (action_id)
),

-- deliveries a provider reported on (delivery_state set, tasks/events.py) of the live actions of
-- the last 30 days: the state is the latest known, also when an earlier date is measured again
provider_deliveries as (
    select deliveries.channel, deliveries.delivery_state, dunning_actions.currency
    from deliveries
    join dunning_actions using (action_id)
    cross join d
    where deliveries.delivery_state is not null
      and dunning_actions.mode = 'live'
      and dunning_actions.as_of > d.as_of - 30
      and dunning_actions.as_of <= d.as_of
),

postal_letters as (
    -- the letters of live actions dated D − 29 … D the postal tracking export reported on
    -- (relance post import): returned, and the days from deposit (else the action's date) to receipt
    select
        deliveries.channel,
        dunning_actions.currency,
        postal_tracking.outcome,
        datediff('day', coalesce(postal_tracking.deposited_on, dunning_actions.as_of), postal_tracking.received_on)
            as days_to_receipt
    from postal_tracking
    join deliveries using (delivery_id)
    join dunning_actions using (action_id)
    cross join d
    where dunning_actions.mode = 'live'
      and dunning_actions.as_of > d.as_of - 30
      and dunning_actions.as_of <= d.as_of
),

-- ---------------------------------------------------------------- every metric, in long form
-- kind 'value': value = num; kind 'ratio': value = num / den × factor (absent when den = 0)
metrics as (
    -- balances (contract §5)
    select currency, 'open_ar' as metric, 'all' as dimension, 'all' as dimension_value,
           'value' as kind, ar_d as num, null as den, null as factor from terms
    -- what debtors said: promises kept and broken, disputes, plans, outcomes (int_outcome_metrics)
    union all select currency, metric, dimension, dimension_value, kind, num, den, factor from int_outcome_metrics
    -- cash collected by the last step before each payment (int_metrics_cash_attribution): additive sums
    union all select currency, 'cash_attributed_30d', 'stage', stage, 'value', sum(amount), null, null
              from int_metrics_cash_attribution group by currency, stage
    union all select currency, 'cash_attributed_30d', 'channel', channel, 'value', sum(amount), null, null
              from int_metrics_cash_attribution group by currency, channel
    union all select currency, 'cash_attributed_30d', 'collector', collector, 'value', sum(amount), null, null
              from int_metrics_cash_attribution group by currency, collector
    union all select currency, 'overdue_ar', 'all', 'all', 'value', overdue_ar_d, null, null from terms
    union all select currency, 'current_ar', 'all', 'all', 'value', current_ar_d, null, null from terms
    union all select currency, 'unapplied_credit', 'all', 'all', 'value', unapplied_credit, null, null from terms
    union all select currency, 'open_ar_30d_ago', 'all', 'all', 'value', ar_d_minus_30, null, null from terms
    union all select currency, 'collected_30d', 'all', 'all', 'value', collected_30d, null, null from terms
    union all select currency, 'sales_30d', 'all', 'all', 'value', sales_30d, null, null from terms
    union all select currency, 'sales_90d', 'all', 'all', 'value', sales_90d, null, null from terms
    union all select currency, 'open_ar', 'bucket', bucket, 'value', open_amount, null, null from by_bucket
    union all select currency, 'overdue_ar', 'bucket', bucket, 'value', overdue_amount, null, null
              from by_bucket where holds_overdue_days
    -- days sales outstanding and collection effectiveness (contract §5)
    union all select currency, 'dso_90d', 'all', 'all', 'ratio', ar_d, sales_90d, 90 from terms
    union all select currency, 'best_possible_dso_90d', 'all', 'all', 'ratio', current_ar_d, sales_90d, 90 from terms
    union all select currency, 'cei_30d', 'all', 'all', 'ratio',
                     ar_d_minus_30 + sales_30d - ar_d, ar_d_minus_30 + sales_30d - current_ar_d, 100 from terms
    -- recovery within 30 days of an action (contract §5, and by channel and segment)
    union all select currency, 'recovery_rate_30d', 'stage', stage, 'ratio', sum(recovered_30d), sum(amount_due), 100
              from recovery group by currency, stage
    union all select currency, 'recovery_rate_30d', 'all', 'all', 'ratio', sum(recovered_30d), sum(amount_due), 100
              from recovery group by currency
    union all select currency, 'recovery_rate_30d', 'channel', channel, 'ratio', sum(recovered_30d), sum(amount_due), 100
              from recovery_by_channel group by currency, channel
    union all select currency, 'recovery_rate_30d', 'segment', segment, 'ratio', sum(recovered_30d), sum(amount_due), 100
              from recovery group by currency, segment
    -- real and replayed actions apart: replayed effects are never read as real ones
    union all select currency, 'recovery_rate_30d', 'mode', mode, 'ratio', sum(recovered_30d), sum(amount_due), 100
              from every_recovery group by currency, mode
    union all select currency, 'recovery_actions_30d', 'mode', mode, 'value', count(*), null, null
              from every_recovery group by currency, mode
    -- claims cancelled by credit notes within 30 days: reported apart, never as money recovered
    union all select currency, 'credit_note_rate_30d', 'all', 'all', 'ratio', sum(credited_30d), sum(amount_due), 100
              from recovery group by currency
    union all select currency, 'credit_note_rate_30d', 'stage', stage, 'ratio', sum(credited_30d), sum(amount_due), 100
              from recovery group by currency, stage
    union all select currency, 'credit_note_rate_30d', 'mode', mode, 'ratio', sum(credited_30d), sum(amount_due), 100
              from every_recovery group by currency, mode
    union all select currency, 'recovery_actions_30d', 'stage', stage, 'value', count(*), null, null
              from recovery group by currency, stage
    union all select currency, 'recovery_actions_30d', 'all', 'all', 'value', count(*), null, null
              from recovery group by currency
    union all select currency, 'recovery_actions_30d', 'channel', channel, 'value', count(*), null, null
              from recovery_by_channel group by currency, channel
    union all select currency, 'recovery_actions_30d', 'segment', segment, 'value', count(*), null, null
              from recovery group by currency, segment
    -- recovery of overdue amounts by their age at the start of the window
    union all select currency, 'recovery_by_age_' || window_days || 'd', 'age_bucket', bucket, 'ratio',
                     sum(greatest(0, open_at_start - open_now)), sum(open_at_start), 100
              from age_start group by currency, window_days, bucket
    union all select currency, 'recovery_by_age_' || window_days || 'd', 'all', 'all', 'ratio',
                     sum(greatest(0, open_at_start - open_now)), sum(open_at_start), 100
              from age_start group by currency, window_days
    -- the overdue amount under a hold (dispute, promise, payment plan, legal, other)
    union all select currency, 'overdue_held', 'hold_kind', hold_kind, 'value', sum(open_amount), null, null
              from snapshot where days_past_due > 0 and held group by currency, hold_kind
    union all select currency, 'overdue_held', 'all', 'all', 'value',
                     coalesce(sum(open_amount) filter (where held), 0), null, null
              from snapshot where days_past_due > 0 group by currency
    union all select currency, 'overdue_held_share', 'all', 'all', 'ratio',
                     coalesce(sum(open_amount) filter (where held), 0), sum(open_amount), 100
              from snapshot where days_past_due > 0 group by currency
    -- the ladder on as_of
    union all select currency, 'units_at_stage', 'stage', current_stage, 'value', count(*), null, null
              from units where current_stage is not null group by currency, current_stage
    union all select currency, 'units_in_ladder', 'all', 'all', 'value',
                     count(units.current_stage), null, null
              from currencies left join units using (currency) group by currency
    union all select currency, 'units_held', 'all', 'all', 'value',
                     count(*) filter (where units.held), null, null
              from currencies left join units using (currency) group by currency
    -- the day's actions and their deliveries
    union all select currency, 'actions_of_day', 'all', 'all', 'value', count(day_actions.action_id), null, null
              from currencies left join day_actions using (currency) group by currency
    union all select currency, 'actions_of_day', 'stage', stage, 'value', count(*), null, null
              from day_actions group by currency, stage
    union all select currency, 'amount_claimed_of_day', 'all', 'all', 'value', coalesce(sum(day_actions.amount_due), 0), null, null
              from currencies left join day_actions using (currency) group by currency
    union all select currency, 'amount_claimed_of_day', 'stage', stage, 'value', sum(amount_due), null, null
              from day_actions group by currency, stage
    union all select currency, 'deliveries_of_day', 'all', 'all', 'value', count(day_deliveries.delivery_id), null, null
              from currencies left join day_deliveries using (currency) group by currency
    union all select currency, 'deliveries_of_day', 'status', status, 'value', count(*), null, null
              from day_deliveries group by currency, status
    union all select currency, 'deliveries_of_day', 'channel', channel, 'value', count(*), null, null
              from day_deliveries group by currency, channel
    union all select currency, 'deliveries_of_day', 'channel_status', channel || ':' || status, 'value', count(*), null, null
              from day_deliveries group by currency, channel, status
    -- what the providers proved (docs/metrics.md, "Delivery and bounce rates")
    union all select currency, 'delivery_rate_30d', 'channel', channel, 'ratio',
                     count(*) filter (where delivery_state = 'delivered'), count(*), 100
              from provider_deliveries group by currency, channel
    union all select currency, 'bounce_rate_30d', 'channel', channel, 'ratio',
                     count(*) filter (where delivery_state in ('bounced', 'dropped', 'undelivered')), count(*), 100
              from provider_deliveries group by currency, channel
    -- registered letters and letters: returns and time to receipt (docs/metrics.md, "Letters")
    union all select currency, 'letters_returned_30d', 'channel', channel, 'value',
                     count(*) filter (where outcome = 'returned'), null, null
              from postal_letters group by currency, channel
    union all select currency, 'letters_returned_rate_30d', 'channel', channel, 'ratio',
                     count(*) filter (where outcome = 'returned'), count(*) filter (where outcome <> 'in_transit'), 100
              from postal_letters group by currency, channel
    -- a median is no sum: its histogram (num: a value, den: how many letters took it) is
    union all select currency, 'median_days_to_receipt_30d', 'channel', channel, 'median',
                     days_to_receipt, count(*), null
              from postal_letters where outcome = 'received' and days_to_receipt is not null
              group by currency, channel, days_to_receipt
)

select $as_of as as_of, currency, metric, dimension, dimension_value, kind, num, den, factor
from metrics
