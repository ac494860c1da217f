-- The policy's ladder rules (docs/policy.md "Ladders per segment and risk"), once, as a table macro
-- over the facts of some units (named by string: query_table; a CTE of the calling model works):
-- int_ladder_units (the ladder each unit climbs) and int_late_charge_rules (the charges of a
-- statement of invoices paid late) both choose by it. Loaded by the runner on the connection of a
-- model whose header says `-- macros: ladder_rules`.
--
-- facts_rel: one row per unit with customer_id, currency, segment, tags (a list), risk_class and
-- open_amount. The first rule of temp table ladder_rules (by position) whose every condition holds
-- chooses the unit's ladder; none: the standard ladder, rule `default`.
create or replace temp macro chosen_ladders(facts_rel) as table
with

facts as (
    select * from query_table(facts_rel)
),

rules as (
    select * from ladder_rules
),

matches as (
    select facts.customer_id, facts.currency, rules.rule, rules.ladder
    from facts
    join rules
        on (rules.segments is null or list_contains(rules.segments, facts.segment))
       and (rules.risk_classes is null or list_contains(rules.risk_classes, facts.risk_class))
       and (rules.customers is null or list_contains(rules.customers, facts.customer_id))
       and (rules.tag is null or list_contains(facts.tags, rules.tag))
       and (rules.min_amount is null or facts.open_amount >= rules.min_amount)
    qualify row_number() over (partition by facts.customer_id, facts.currency order by rules.position) = 1
)

select
    facts.customer_id,
    facts.currency,
    facts.segment,
    facts.risk_class,
    coalesce(matches.ladder, 'standard') as ladder,
    coalesce(matches.rule, 'default') as ladder_rule
from facts
left join matches using (customer_id, currency);
