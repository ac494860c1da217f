-- model: int_late_charge_rules
-- grain: one row per unit (customer_id, currency) with an invoice issued by as_of: the charge
--        rule a statement of late-payment charges applies to its invoices paid late — the rule of
--        the ladder the policy's ladder_rules choose for the unit (first match, else `standard`),
--        read on its segment, tags, customer id, open amount at as_of and, when a profile was
--        measured on or before as_of, its latest risk class (none measured: `new`). Only a
--        `commercial` rule for the unit's segment charges a paid invoice: the legal-rate interest
--        of a consumer runs from a formal notice, never on an invoice simply paid late
--        (docs/policy.md "Statements of late-payment charges")
-- materialized: temp
-- macros: ladder_rules
-- depends: int_invoices_as_of
with

invoices as (
    select customer_id, currency, amount
    from int_invoices_as_of
    where kind = 'invoice'
),

customers as (
    select customer_id, segment, tags
    from stg_customers
),

ladders as (
    select * from ladder_defs
),

profiles as (
    -- the latest class measured on or before as_of (point in time)
    select customer_id, currency, risk_class
    from debtor_profile
    where as_of <= cast($as_of as date)
    qualify row_number() over (partition by customer_id, currency order by as_of desc) = 1
),

open_amounts as (
    select customer_id, currency, sum(open_amount) as open_amount
    from invoice_snapshot
    where as_of = (select max(as_of) from invoice_snapshot where as_of <= cast($as_of as date))
    group by customer_id, currency
),

-- unit_facts is read by chosen_ladders (sql/macros/ladder_rules.sql) through query_table
unit_facts as (  -- noqa: ST03
    select
        units.customer_id,
        units.currency,
        customers.segment,
        string_split(coalesce(customers.tags, ''), ',') as tags,
        coalesce(profiles.risk_class, 'new') as risk_class,
        coalesce(open_amounts.open_amount, 0) as open_amount
    from (select distinct customer_id, currency from invoices) as units
    left join customers using (customer_id)
    left join profiles using (customer_id, currency)
    left join open_amounts using (customer_id, currency)
),

chosen as (
    -- the first rule each unit meets, as for dunning (sql/macros/ladder_rules.sql)
    select customer_id, currency, segment, ladder, ladder_rule
    from chosen_ladders('unit_facts')
)

select
    chosen.customer_id,
    chosen.currency,
    chosen.ladder,
    chosen.ladder_rule,
    ladders.charge_kind,
    ladders.margin_points,
    ladders.indemnity,
    ladders.indemnity_currency,
    ladders.charge_kind = 'commercial'
        and (ladders.charge_segments is null or list_contains(ladders.charge_segments, chosen.segment)) as charges_paid_late
from chosen
join ladders using (ladder)
