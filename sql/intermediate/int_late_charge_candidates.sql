-- model: int_late_charge_candidates
-- grain: one row per invoice a statement of late-payment charges made on as_of may charge: an
--        invoice of a charged segment fully paid late (the payments naming it reached its amount
--        after its due date) on a date of the statement's window [$window_start, $period_end]
--        (its period and the lookback_months before it: a payment loaded late is still charged),
--        not yet charged on a statement, with late days not already stated by a sent formal
--        notice or litigation action (action_charges); and why it is withheld, if it is
--        (withheld_reason: legal, disputed, dispute_open; null: charged by this statement)
-- materialized: temp
-- depends: int_invoices_as_of, int_payments_as_of, int_late_charge_rules
-- macros: settlement
--
-- Only the payments naming an invoice settle it here (sql/macros/settlement.sql): a payment on
-- account or a credit note settles invoices through the unit's credit pool, whose allocation
-- (sql/macros/allocation.sql) gives an open amount at a date but no settlement date — such
-- invoices are not charged.
--
-- Never wrong towards a debtor (docs/policy.md "Statements of late-payment charges"): an invoice
-- under a dispute or a legal hold at any time from its due date to as_of is not charged
-- automatically —
--   legal:        a source hold of kind legal (naming the invoice or its whole customer), active
--                 on a day of [due_date, as_of], or seen in an invoice_snapshot of those days;
--   disputed:     a source hold of kind dispute likewise (the source does not say how it ended),
--                 or a recorded dispute (outcomes) resolved otherwise than `rejected`
--                 (credit_note_expected, paid: it may have been upheld);
--   dispute_open: a recorded dispute naming the invoice, not resolved at as_of: withheld until
--                 resolved; once resolved `rejected` (the invoice was owed as issued) the next
--                 statement whose window still holds its settlement date charges it.
with

invoices as (
    select invoice_id, customer_id, currency, due_date, amount
    from int_invoices_as_of
    where kind = 'invoice'
),

charge_rules as (
    -- the charge rule of each unit's ladder: only a commercial rule for its segment charges
    select * from int_late_charge_rules
    where charges_paid_late
),

source_holds as (
    -- the source's holds known at as_of (a lifted hold may stay with its end date)
    select customer_id, invoice_id, kind, start_date, end_date
    from stg_holds
    where kind in ('dispute', 'legal')
      and start_date <= cast($as_of as date)
),

known_outcomes as (
    select *
    from outcomes
    where said_on <= cast($as_of as date)
),

resolutions as (
    -- the first resolution of each dispute known at as_of (as int_outcome_status reads it)
    select resolves_id as outcome_id, said_on as resolved_on, resolution
    from known_outcomes
    where kind = 'resolution'
    qualify row_number() over (partition by resolves_id order by said_on, recorded_at, outcome_id) = 1
),

disputes as (
    -- one row per (recorded dispute, invoice it names)
    select
        known_outcomes.outcome_id,
        unnest(known_outcomes.invoice_ids) as invoice_id,
        known_outcomes.said_on,
        resolutions.resolved_on,
        resolutions.resolution
    from known_outcomes
    left join resolutions using (outcome_id)
    where known_outcomes.kind = 'dispute'
),

settled as (
    -- the invoices paid in full on a day of the window, the day and what the payments naming them paid
    select invoice_id, paid_on, paid
    from invoice_settlements(
        'int_invoices_as_of', 'int_payments_as_of', cast($window_start as date), cast($period_end as date)
    )
),

stated as (
    -- the charges a sent formal notice or litigation action already claimed for the invoice: the
    -- indemnity (once per invoice), and the interest up to the day whose figures it stated
    select
        charges.invoice_id,
        max(coalesce(sent.figures_as_of, actions.as_of)) as stated_through
    from action_charges as charges
    join dunning_actions as actions using (action_id)
    join deliveries as sent
        on sent.action_id = charges.action_id
       and sent.status = 'sent'
    group by charges.invoice_id
),

already_charged as (
    -- a live run ignores what a replay (backfill) simulated; a replay ignores nothing
    select late_charges.invoice_id
    from late_charges
    join late_charge_statements as statements using (statement_id)
    where statements.mode = 'live' or $mode = 'replay'
),

candidates as (
    select
        invoices.*,
        settled.paid_on,
        settled.paid,
        stated.stated_through,
        charge_rules.ladder,
        charge_rules.charge_kind,
        charge_rules.margin_points,
        charge_rules.indemnity,
        charge_rules.indemnity_currency
    from invoices
    join settled using (invoice_id)
    join charge_rules using (customer_id, currency)
    left join stated using (invoice_id)
    where settled.paid_on > invoices.due_date
      and settled.paid_on between cast($window_start as date) and cast($period_end as date)
      and invoices.invoice_id not in (select invoice_id from already_charged)
      -- a notice whose figures reached the payment date left nothing to state
      and (stated.stated_through is null or stated.stated_through < settled.paid_on)
),

held_by_source as (
    -- a source hold (on the invoice, or on its whole customer) active on a day of [due_date, as_of]
    select
        candidates.invoice_id,
        bool_or(source_holds.kind = 'legal') as legal,
        bool_or(source_holds.kind = 'dispute') as disputed
    from candidates
    join source_holds
        on source_holds.customer_id = candidates.customer_id
       and (source_holds.invoice_id is null or source_holds.invoice_id = candidates.invoice_id)
       and (source_holds.end_date is null or source_holds.end_date >= candidates.due_date)
    group by candidates.invoice_id
),

held_in_snapshots as (
    -- a hold the source has since deleted, seen by a run of [due_date, as_of] (invoice_snapshot);
    -- a dispute there that a recorded dispute explains is judged by its resolution instead
    select
        candidates.invoice_id,
        bool_or(snapshot.hold_kind = 'legal') as legal,
        bool_or(
            snapshot.hold_kind = 'dispute'
            and not exists (
                select 1
                from disputes
                where disputes.invoice_id = snapshot.invoice_id
                  and disputes.said_on <= snapshot.as_of
                  and (disputes.resolved_on is null or disputes.resolved_on > snapshot.as_of)
            )
        ) as disputed
    from candidates
    join invoice_snapshot as snapshot
        on snapshot.invoice_id = candidates.invoice_id
       and snapshot.as_of between candidates.due_date and cast($as_of as date)
       and snapshot.hold_kind in ('dispute', 'legal')
    group by candidates.invoice_id
),

recorded_disputes as (
    -- the recorded disputes naming the invoice that held it on a day from its due date on
    select
        candidates.invoice_id,
        bool_or(disputes.resolution is null) as open_dispute,
        bool_or(disputes.resolution is not null and disputes.resolution <> 'rejected') as upheld
    from candidates
    join disputes
        on disputes.invoice_id = candidates.invoice_id
       and (disputes.resolved_on is null or disputes.resolved_on > candidates.due_date)
    group by candidates.invoice_id
)

select
    candidates.*,
    case
        when coalesce(held_by_source.legal, false) or coalesce(held_in_snapshots.legal, false) then 'legal'
        when coalesce(held_by_source.disputed, false) or coalesce(held_in_snapshots.disputed, false)
             or coalesce(recorded_disputes.upheld, false) then 'disputed'
        when coalesce(recorded_disputes.open_dispute, false) then 'dispute_open'
    end as withheld_reason
from candidates
left join held_by_source using (invoice_id)
left join held_in_snapshots using (invoice_id)
left join recorded_disputes using (invoice_id)
