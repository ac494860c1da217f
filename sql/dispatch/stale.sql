-- Planned deliveries of an earlier action (waiting for approval, or deferred) that must not go
-- out any more, with the reason:
--   * settled:    none of the invoices the action claims is still open and unheld at $as_of
--                 (checked only when tonight's invoice_snapshot exists);
--   * blocked:    the customer now carries dunning_block;
--   * superseded: a later live action of the same unit speaks for it (never for an action a
--                 person approved: that decision stands until the invoices are settled).
-- Deliveries of tonight's actions (as_of = $as_of) are never stale: the ladder just made them.
-- params: $as_of
with

waiting as (
    select d.delivery_id, a.action_id, a.customer_id, a.currency, a.as_of, a.invoice_ids, a.decided_at
    from deliveries d
    join dunning_actions a using (action_id)
    where d.status = 'planned'
      and a.mode = 'live'
      and a.as_of < $as_of
),

later as (
    select w.delivery_id, max(l.action_id) as later_action_id
    from waiting w
    join dunning_actions l
      on l.customer_id = w.customer_id
     and l.currency = w.currency
     and l.mode = 'live'
     and l.as_of > w.as_of
     and l.as_of <= $as_of
    where w.decided_at is null
    group by w.delivery_id
),

claimed as (
    select delivery_id, unnest(invoice_ids) as invoice_id from waiting
),

still_due as (
    select c.delivery_id, count(s.invoice_id) as still_open
    from claimed c
    left join invoice_snapshot s
      on s.as_of = $as_of
     and s.invoice_id = c.invoice_id
     and s.open_amount > 0
     and not s.held
    group by c.delivery_id
),

tonight as (
    select count(*) > 0 as has_snapshot from invoice_snapshot where as_of = $as_of
)

select
    w.delivery_id,
    'skipped' as status,
    case
        when tonight.has_snapshot and coalesce(still_due.still_open, 0) = 0
            then 'settled or put on hold since ' || strftime(w.as_of, '%Y-%m-%d')
                 || ': no invoice of the action is still open and unheld'
        when coalesce(cust.dunning_block, false)
            then 'customer ' || w.customer_id || ' is now blocked from dunning (dunning_block)'
        else 'superseded by the later action ' || later.later_action_id
    end as detail
from waiting w
cross join tonight
left join later using (delivery_id)
left join still_due using (delivery_id)
left join stg_customers cust on cust.customer_id = w.customer_id
where (tonight.has_snapshot and coalesce(still_due.still_open, 0) = 0)
   or coalesce(cust.dunning_block, false)
   or later.delivery_id is not null
order by w.delivery_id
