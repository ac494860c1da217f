-- model: int_ladder_units
-- grain: one row per unit (customer_id, currency) with open invoices at as_of or an episode open
--        when as_of starts: the ladder it climbs and the rule that chose it (ladder_rules, first
--        match; none: standard/default), whether it is held, its driving invoice, dunnable amount
--        and target stage in its ladder, its overdue amount and the policy's tolerance for its currency
-- materialized: temp
-- macros: ladder_rules
with

all_invoices as (
    select * from int_ladder_invoices
),

ladders as (
    select * from ladder_defs
),

risk as (
    -- the debtor profile of as_of (temp table ladder_risk: filled when a rule reads the risk class)
    select customer_id, currency, risk_class from ladder_risk
),

state as (
    select * from int_ladder_state
),

customers as (
    select * from stg_customers
),

unit_holds as (
    -- the active holds naming no invoice: the whole customer (source: all its currencies) or one
    -- unit (a recorded outcome: a promise, a plan, "we paid")
    select customer_id, currency, kind, hold_id, kind_priority, origin, end_date
    from int_active_holds
    where invoice_id is null
),

outcome_invoice_holds as (
    -- open invoices held by a recorded outcome (a dispute, a plan's invoices): while they are the
    -- unit's only dunnable ones the unit waits for the outcome (held), its episode neither closes
    -- nor restarts — a broken plan or a rejected dispute resumes the ladder at the next stage
    select invoices.customer_id, invoices.currency,
           arg_min(holds.kind, (holds.kind_priority, holds.hold_id)) as kind,
           min(holds.hold_id) as hold_id
    from int_ladder_invoices as invoices
    join int_active_holds as holds
        on holds.invoice_id = invoices.invoice_id and holds.origin = 'outcome'
    group by invoices.customer_id, invoices.currency
),

stages as (
    select * from ladder_stages
),

tolerances as (
    select * from ladder_tolerance
),

-- unit_facts is read by chosen_ladders (sql/macros/ladder_rules.sql) through query_table
unit_facts as (  -- noqa: ST03
    -- what the ladder rules read: segment, tags, risk class, open amount (open unheld invoices)
    select
        all_units.customer_id,
        all_units.currency,
        customers.segment,
        string_split(coalesce(customers.tags, ''), ',') as tags,
        -- no profile row: too little history (new), when the profile was built for the rules
        coalesce(risk.risk_class, case when (select count(*) from risk) > 0 then 'new' end) as risk_class,
        coalesce(open_amounts.open_amount, 0) as open_amount
    from (
        select customer_id, currency from all_invoices
        union
        select customer_id, currency from state where open_episode_id is not null
    ) as all_units
    left join customers using (customer_id)
    left join risk using (customer_id, currency)
    left join (
        select customer_id, currency, sum(open_amount) filter (where not invoice_held) as open_amount
        from all_invoices
        group by customer_id, currency
    ) as open_amounts using (customer_id, currency)
),

chosen as (
    -- the first rule each unit meets (sql/macros/ladder_rules.sql); none: standard/default
    select customer_id, currency, risk_class, ladder, ladder_rule
    from chosen_ladders('unit_facts')
),

invoices as (
    -- dunnable: unheld and reached by the first stage of the unit's ladder
    select
        all_invoices.*,
        chosen.ladder,
        not all_invoices.invoice_held and all_invoices.days_past_due >= ladders.first_offset as ladder_dunnable
    from all_invoices
    join chosen using (customer_id, currency)
    join ladders using (ladder)
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
        coalesce(sum(open_amount) filter (where ladder_dunnable), 0) as dunnable_amount,
        coalesce(sum(open_amount) filter (where unheld_overdue), 0) as overdue_amount
    from invoices
    group by customer_id, currency
),

units as (
    select customer_id, currency from unit_invoices
    union
    select customer_id, currency from state where open_episode_id is not null
),

customer_holds as (
    -- the strongest hold on each unit
    select units.customer_id, units.currency, unit_holds.kind, unit_holds.hold_id
    from units
    join unit_holds
        on unit_holds.customer_id = units.customer_id
       and (unit_holds.currency is null or unit_holds.currency = units.currency)
    qualify row_number() over (partition by units.customer_id, units.currency
                               order by unit_holds.kind_priority, unit_holds.hold_id) = 1
),

unit_hold_rows as (
    -- every active hold on the unit: naming no invoice, or naming one of its open invoices
    select units.customer_id, units.currency, unit_holds.origin, unit_holds.hold_id, unit_holds.kind,
           unit_holds.end_date, cast(null as varchar) as invoice_id
    from units
    join unit_holds
        on unit_holds.customer_id = units.customer_id
       and (unit_holds.currency is null or unit_holds.currency = units.currency)
    union all
    select invoices.customer_id, invoices.currency, holds.origin, holds.hold_id, holds.kind, holds.end_date,
           holds.invoice_id
    from int_ladder_invoices as invoices
    join int_active_holds as holds on holds.invoice_id = invoices.invoice_id
),

hold_conflicts as (
    -- a unit held both by the source and by a recorded outcome: said, never settled silently
    select
        customer_id,
        currency,
        string_agg(
            case when origin = 'source' then 'source hold ' else 'outcome ' end
            || hold_id || ' (' || kind || coalesce(' of ' || invoice_id, '')
            || coalesce(' until ' || cast(end_date as varchar), '') || ')',
            ' and ' order by origin desc, hold_id, invoice_id
        ) || ' both hold the unit' as hold_conflict
    from unit_hold_rows
    group by customer_id, currency
    having count(distinct origin) > 1
),

targets as (
    -- the highest stage whose offset the driving invoice has reached and whose minimum the
    -- dunnable amount meets
    select unit_invoices.customer_id, unit_invoices.currency, max(stages.stage_rank) as target_rank
    from unit_invoices
    join chosen using (customer_id, currency)
    join stages
        on stages.ladder = chosen.ladder
       and stages.offset_days <= unit_invoices.driving_days_past_due
       and stages.min_amount <= unit_invoices.dunnable_amount
    group by unit_invoices.customer_id, unit_invoices.currency
)

select
    units.customer_id,
    units.currency,
    chosen.ladder,
    chosen.ladder_rule,
    chosen.risk_class as ladder_risk_class,
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
    coalesce(customers.dunning_block, false) or customer_holds.customer_id is not null
        or (outcome_invoice_holds.customer_id is not null and coalesce(unit_invoices.dunnable_amount, 0) = 0) as held,
    case when customers.dunning_block then 'dunning_block'
         else coalesce(customer_holds.kind, outcome_invoice_holds.kind) end as hold_reason,
    coalesce(customer_holds.hold_id, outcome_invoice_holds.hold_id) as hold_id,
    hold_conflicts.hold_conflict,
    customers.country,
    customers.segment,
    customers.email is not null as has_email,
    customers.phone is not null as has_phone,
    customers.street is not null and customers.city is not null as has_address
from units
join chosen using (customer_id, currency)
left join unit_invoices using (customer_id, currency)
left join targets using (customer_id, currency)
left join customers using (customer_id)
left join customer_holds using (customer_id, currency)
left join outcome_invoice_holds using (customer_id, currency)
left join hold_conflicts using (customer_id, currency)
left join tolerances on tolerances.currency = units.currency
