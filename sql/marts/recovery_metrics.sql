-- model: recovery_metrics
-- grain: one row per (currency, metric, dimension, dimension_value) on as_of
--        (contract §5; every metric is defined in docs/metrics.md)
-- materialized: incremental_as_of
--
-- Every term is computed from the source as of its own date (recovery_metric_parts: the open
-- amounts at as_of, as_of − 30 and as_of − 90, those at each measured action's date and 30 days
-- later, whether or not a run happened on them). Here the terms are summed by key — one row each
-- on one database, one per shard on a fleet's merged database (tasks/fleet/merge.py) — then the
-- ratios are exact decimal arithmetic rounded half away from zero to 4 decimals (never binary
-- floats); a ratio whose denominator is zero (or has no data) is absent.
with

parts as (
    select * from recovery_metric_parts where as_of = $as_of
),

summed as (
    select currency, metric, dimension, dimension_value, kind, factor, sum(num) as num, sum(den) as den
    from parts
    where kind in ('value', 'ratio')
    group by currency, metric, dimension, dimension_value, kind, factor
),

held_share as (
    -- the overdue amount under each kind of hold, over all the overdue amount of its currency
    select by_kind.currency, 'overdue_held_share' as metric, 'hold_kind' as dimension,
           by_kind.dimension_value, 'ratio' as kind, 100 as factor, by_kind.num, total.den
    from summed as by_kind
    join summed as total
        on total.currency = by_kind.currency
       and total.metric = 'overdue_held_share'
       and total.dimension = 'all'
    where by_kind.metric = 'overdue_held' and by_kind.dimension = 'hold_kind'
),

histogram as (
    select currency, metric, dimension, dimension_value, num as sample, sum(den) as n
    from parts
    where kind = 'median'
    group by currency, metric, dimension, dimension_value, num
),

medians as (
    -- the median of the values themselves (each value repeated as often as it was seen)
    select currency, metric, dimension, dimension_value, 'value' as kind, null as factor,
           cast(median(sample) as decimal(38, 4)) as num, null as den
    from (select histogram.*, unnest(range(cast(n as bigint))) from histogram)
    group by currency, metric, dimension, dimension_value
),

metrics as (
    select currency, metric, dimension, dimension_value, kind, num, den, factor from summed
    union all
    select currency, metric, dimension, dimension_value, kind, num, den, factor from held_share
    union all
    select currency, metric, dimension, dimension_value, kind, num, den, factor from medians
),

-- exact ratios: num / den × factor in integer hundredths, rounded half away from zero to 4 decimals
valued as (
    select
        currency, metric, dimension, dimension_value,
        case
            when kind = 'value' then cast(num as decimal(38,4))
            else cast(
                cast(
                    sign(cast(num * 100 as hugeint)) * sign(cast(den * 100 as hugeint))
                    * ((abs(cast(num * 100 as hugeint)) * factor * 10000 * 2 + abs(cast(den * 100 as hugeint)))
                       // (2 * abs(cast(den * 100 as hugeint))))
                    as decimal(38,0)
                ) * 0.0001 as decimal(38,4))
        end as value
    from metrics
    where kind = 'value' or (den is not null and den <> 0)
),

-- add_90d: the difference of the two stored DSO figures, so that dso = best possible + add
with_add as (
    select * from valued
    union all
    select dso.currency, 'add_90d', 'all', 'all', dso.value - best.value
    from valued as dso
    join valued as best
        on best.currency = dso.currency and best.metric = 'best_possible_dso_90d'
    where dso.metric = 'dso_90d'
)

select $as_of as as_of, currency, metric, dimension, coalesce(dimension_value, 'none') as dimension_value,
       cast(value as decimal(38,4)) as value
from with_add
order by currency, metric, dimension, dimension_value
