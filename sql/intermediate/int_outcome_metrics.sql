-- model: int_outcome_metrics
-- grain: one row per (currency, metric, dimension, dimension_value) of the outcome metrics on
--        as_of, in the shape of recovery_metrics' terms (kind 'value' or 'ratio': num / den × factor);
--        read by marts/recovery_metrics (docs/metrics.md "What debtors said")
-- materialized: temp
with

status as (
    select * from int_outcome_status
),

said as (
    -- with the stage of the call or visit it answers (a worklist row names its action; 'none' without)
    select outcomes.*, coalesce(actions.stage, 'none') as stage
    from outcomes
    left join dunning_actions as actions using (action_id)
    where outcomes.said_on > cast($as_of as date) - 30 and outcomes.said_on <= $as_of
      and outcomes.currency is not null
),

-- promises whose deadline (date + grace) fell in (as_of − 30, as_of]: kept or broken by then
promises_due as (
    select * from status
    where kind = 'promise' and status in ('kept', 'broken')
      and hold_until > cast($as_of as date) - 30 and hold_until < $as_of
),

open_disputes as (
    select
        *,
        datediff('day', said_on, cast($as_of as date)) as age_days,
        case when datediff('day', said_on, cast($as_of as date)) <= 30 then '0-30'
             when datediff('day', said_on, cast($as_of as date)) <= 60 then '31-60'
             else '61+' end as age_bucket
    from status
    where kind = 'dispute' and status in ('open', 'credit_note_expected')
),

plans as (
    select * from status where kind = 'plan' and status <> 'superseded'
)

select currency, 'promise_kept_rate_30d' as metric, 'all' as dimension, 'all' as dimension_value, 'ratio' as kind,
       cast(count(*) filter (where status = 'kept') as decimal(38,2)) as num,
       cast(count(*) as decimal(38,2)) as den, 100 as factor
from promises_due group by currency
union all
select currency, 'promise_kept_rate_30d', 'collector', recorded_by, 'ratio',
       count(*) filter (where status = 'kept'), count(*), 100
from promises_due group by currency, recorded_by
union all
select currency, 'promise_kept_amount_rate_30d', 'all', 'all', 'ratio',
       coalesce(sum(amount) filter (where status = 'kept'), 0), sum(amount), 100
from promises_due group by currency
union all
select currency, 'promises_broken_30d', 'all', 'all', 'value', count(*) filter (where status = 'broken'), null, null
from promises_due group by currency
union all
select currency, 'promises_broken_30d', 'collector', recorded_by, 'value', count(*), null, null
from promises_due where status = 'broken' group by currency, recorded_by
union all
select currency, 'disputes_open', 'all', 'all', 'value', count(*), null, null
from open_disputes group by currency
union all
select currency, 'disputes_open', 'reason', reason, 'value', count(*), null, null
from open_disputes group by currency, reason
union all
select currency, 'disputes_open', 'age_bucket', age_bucket, 'value', count(*), null, null
from open_disputes group by currency, age_bucket
union all
select currency, 'plans', 'status', status, 'value', count(*), null, null
from plans group by currency, status
union all
select currency, 'outcomes_30d', 'kind', kind, 'value', count(*), null, null
from said where kind <> 'resolution' group by currency, kind
union all
select currency, 'outcomes_30d', 'collector', recorded_by, 'value', count(*), null, null
from said where kind <> 'resolution' group by currency, recorded_by
union all
select currency, 'outcomes_30d', 'stage', stage, 'value', count(*), null, null
from said where kind <> 'resolution' group by currency, stage
union all
select currency, 'outcomes_30d', 'collector_stage', recorded_by || ':' || stage, 'value', count(*), null, null
from said where kind <> 'resolution' group by currency, recorded_by, stage
