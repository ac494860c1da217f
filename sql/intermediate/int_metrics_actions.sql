-- model: int_metrics_actions
-- grain: one row per dunning action dated in (as_of − 120, as_of − 30]: the actions whose
--        30-day recovery is measured on as_of (docs/metrics.md, recovery_rate_30d)
-- materialized: temp
-- An action rejected at approval never reached the debtor and is left out; every other action
-- counts, whatever became of its deliveries (undeliverable, failed). `mode` tells a real action
-- (`live`) from a backfill's simulated one (`replay`): the recovery rates count real actions,
-- the replayed ones are reported apart (contract §5).
select
    actions.action_id,
    actions.as_of as action_date,
    actions.customer_id,
    actions.currency,
    actions.stage,
    actions.stage_rank,
    actions.amount_due,
    actions.invoice_ids,
    actions.status,
    case when actions.status = 'simulated' or actions.mode = 'replay' then 'replay' else 'live' end as mode,
    coalesce(customers.segment, 'b2b') as segment
from dunning_actions as actions
left join stg_customers as customers using (customer_id)
where actions.as_of > cast($as_of as date) - 30 - 90
  and actions.as_of <= cast($as_of as date) - 30
  and actions.status not in ('rejected', 'cancelled')
