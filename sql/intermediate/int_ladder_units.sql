-- model: int_ladder_units
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: whether it is held, its driving invoice, dunnable amount and target
--        stage, its overdue amount and the policy's tolerance for its currency
-- materialized: temp
with

invoices as (
    select * from int_ladder_invoices
),

state as (
    select * from int_ladder_state
),

customers as (
    select * from stg_customers
),

customer_holds as (
    -- the strongest active hold naming the whole customer (all its currencies)
    select customer_id, kind, hold_id
    from int_active_holds
    where invoice_id is null
    qualify row_number() over (partition by customer_id order by kind_priority, hold_id) = 1
),

stages as (
    select * from ladder_stages
),

tolerances as (
    select * from ladder_tolerance
),

unit_invoices as (
    select
        customer_id,
        currency,
        count(*) as open_invoices,
        count(*) filter (where invoice_held) as held_invoices,
        -- the driving invoice: open, unheld, earliest (due_date, invoice_id)
        arg_min(invoice_id, (due_date, invoice_id)) filter (where not invoice_held) as driving_invoice_id,
        max(days_past_due) filter (where not invoice_held) as driving_days_past_due,
        min(due_date) filter (where not invoice_held) as driving_due_date,
        coalesce(sum(open_amount) filter (where dunnable), 0) as dunnable_amount,
        coalesce(sum(open_amount) filter (where unheld_overdue), 0) as overdue_amount
    from invoices
    group by customer_id, currency
),

units as (
    select customer_id, currency from unit_invoices
    union
    select customer_id, currency from state where open_episode_id is not null
),

targets as (
    -- the highest stage whose offset the driving invoice has reached and whose minimum the
    -- dunnable amount meets
    select unit_invoices.customer_id, unit_invoices.currency, max(stages.stage_rank) as target_rank
    from unit_invoices
    join stages
        on stages.offset_days <= unit_invoices.driving_days_past_due
       and stages.min_amount <= unit_invoices.dunnable_amount
    group by unit_invoices.customer_id, unit_invoices.currency
)

select
    units.customer_id,
    units.currency,
    coalesce(unit_invoices.open_invoices, 0) as open_invoices,
    coalesce(unit_invoices.held_invoices, 0) as held_invoices,
    unit_invoices.driving_invoice_id,
    unit_invoices.driving_days_past_due,
    unit_invoices.driving_due_date,
    cast(coalesce(unit_invoices.dunnable_amount, 0) as decimal(38,2)) as dunnable_amount,
    cast(coalesce(unit_invoices.overdue_amount, 0) as decimal(38,2)) as overdue_amount,
    -- no contact at all below this amount (policy tolerance, per currency)
    coalesce(tolerances.amount, cast($default_tolerance as decimal(18,2))) as tolerance,
    targets.target_rank,
    coalesce(customers.dunning_block, false) or customer_holds.customer_id is not null as held,
    case when customers.dunning_block then 'dunning_block' else customer_holds.kind end as hold_reason,
    customer_holds.hold_id,
    customers.country,
    customers.segment,
    customers.email is not null as has_email,
    customers.phone is not null as has_phone,
    customers.street is not null and customers.city is not null as has_address
from units
left join unit_invoices using (customer_id, currency)
left join targets using (customer_id, currency)
left join customers using (customer_id)
left join customer_holds using (customer_id)
left join tolerances on tolerances.currency = units.currency
