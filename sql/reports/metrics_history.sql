-- report: metrics_history
-- grain: one row per (as_of, currency, metric, dimension, dimension_value) of recovery_metrics on
--        the last 90 run dates up to as_of (the dates that have metrics)
-- used by: tasks/report.py (headline trends, aged balance over time)
with

run_dates as (
    select distinct as_of from recovery_metrics where as_of <= $as_of order by as_of desc limit 90
)

select metrics.as_of, metrics.currency, metrics.metric, metrics.dimension, metrics.dimension_value, metrics.value
from recovery_metrics as metrics
join run_dates using (as_of)
where metrics.dimension = 'all' or metrics.metric in ('open_ar', 'overdue_ar')
order by metrics.as_of, metrics.currency, metrics.metric, metrics.dimension, metrics.dimension_value
