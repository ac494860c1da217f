-- The actions waiting for approval: one row per action dated up to $as_of with deliveries still
-- pending_approval, with its amounts, charges and those deliveries (read by `relance approve`,
-- the approval pause of the flow, the drafts and dispatch's count). The statements of
-- late-payment charges (late_charge_statements, tasks/late_charges.py) wait here too, as stage
-- `late_charges_statement` with no principal claimed.
-- params: $as_of
with

ladder as (
    select
        a.action_id,
        a.as_of,
        a.stage,
        a.customer_id,
        a.currency,
        a.amount_due,
        a.invoice_ids,
        a.interest_amount as interest,
        a.indemnity_amount as indemnity,
        a.charges_total,
        a.indemnity_currency,
        list(d.delivery_id order by d.delivery_id) as delivery_ids,
        list(d.channel order by d.delivery_id) as channels,
        count(*) as deliveries
    from dunning_actions as a
    join deliveries as d using (action_id)
    where d.status = 'pending_approval'
      and a.as_of <= $as_of
    group by all
),

statements as (
    select
        s.statement_id as action_id,
        s.as_of,
        'late_charges_statement' as stage,
        s.customer_id,
        s.currency,
        cast(0 as decimal(38,2)) as amount_due,
        s.invoice_ids,
        s.interest_amount as interest,
        s.indemnity_amount as indemnity,
        s.charges_total,
        s.indemnity_currency,
        list(d.delivery_id order by d.delivery_id) as delivery_ids,
        list(d.channel order by d.delivery_id) as channels,
        count(*) as deliveries
    from late_charge_statements as s
    join deliveries as d on d.action_id = s.statement_id
    where d.status = 'pending_approval'
      and s.as_of <= $as_of
    group by all
)

select * from ladder
union all
select * from statements
order by as_of, action_id
