-- model: int_outcome_status
-- grain: one row per commitment recorded by as_of (outcomes of kind promise, plan, dispute,
--        paid_claimed with said_on <= as_of): its status at as_of and the days it holds the ladder.
--        Point in time: only outcomes said, payments received and credit notes issued by as_of.
--        status — promise: pending, kept, broken, superseded; plan: on_track, closed (fully paid),
--        broken (an instalment not paid by its date + grace), superseded; dispute: open,
--        credit_note_expected, resolved; paid_claimed: waiting, confirmed, lapsed.
--        A later promise or plan of the same unit supersedes the earlier one from its day.
-- materialized: temp
with

known_outcomes as (
    select * from outcomes where said_on <= $as_of
),

payments as (
    select customer_id, currency, paid_date, amount from stg_payments where paid_date <= $as_of
),

credit_notes as (
    select customer_id, currency, issue_date from stg_invoices
    where kind = 'credit_note' and issue_date <= $as_of
),

instalments as (
    select
        outcome_instalments.*,
        sum(amount) over (partition by outcome_id order by instalment_no) as due_so_far
    from outcome_instalments
    where outcome_id in (select outcome_id from known_outcomes)
),

resolutions as (
    -- the first resolution of each dispute known at as_of
    select resolves_id as outcome_id, said_on as resolved_on, resolution, outcome_id as resolution_id
    from known_outcomes
    where kind = 'resolution'
    qualify row_number() over (partition by resolves_id order by said_on, recorded_at, outcome_id) = 1
),

commitments as (
    select
        known_outcomes.*,
        -- a later promise or plan of the unit takes the place of this one from its day
        case when kind in ('promise', 'plan') then
            lead(said_on) over (partition by customer_id, currency, kind in ('promise', 'plan')
                                order by said_on, recorded_at, outcome_id)
        end as superseded_on
    from known_outcomes
    where kind in ('promise', 'plan', 'dispute', 'paid_claimed')
),

paid_since as (
    -- the unit's payments from the day the commitment was made, summed day by day
    select
        commitments.outcome_id,
        payments.paid_date,
        sum(payments.amount) over (partition by commitments.outcome_id order by payments.paid_date
                                   rows between unbounded preceding and current row) as paid_so_far
    from commitments
    join payments
        on payments.customer_id = commitments.customer_id
       and payments.currency = commitments.currency
       and payments.paid_date >= commitments.said_on
    where commitments.kind in ('promise', 'plan', 'paid_claimed')
),

covered as (
    -- the day the payments since the commitment first covered its amount (any payment when a
    -- "we paid" gave no amount)
    select
        commitments.outcome_id,
        min(paid_since.paid_date) filter (
            where paid_since.paid_so_far >= coalesce(commitments.amount, 0.01)
        ) as covered_on,
        coalesce(max(paid_since.paid_so_far), 0) as paid_amount
    from commitments
    left join paid_since using (outcome_id)
    group by commitments.outcome_id, commitments.amount
),

instalment_checks as (
    -- each instalment: were the instalments up to it paid by its date + grace?
    select
        instalments.outcome_id,
        instalments.instalment_no,
        instalments.grace_until,
        instalments.due_so_far,
        coalesce(max(paid_since.paid_so_far) filter (where paid_since.paid_date <= instalments.grace_until), 0)
            as paid_by_grace
    from instalments
    left join paid_since using (outcome_id)
    group by all
),

missed as (
    select
        outcome_id,
        min(grace_until) + 1 as broken_on,
        arg_min(instalment_no, grace_until) as missed_instalment
    from instalment_checks
    where grace_until < $as_of and paid_by_grace < due_so_far
    group by outcome_id
),

credit_notes_after as (
    -- credit_note_expected: the first credit note of the unit issued since the dispute
    select commitments.outcome_id, min(credit_notes.issue_date) as credit_note_on
    from commitments
    join credit_notes
        on credit_notes.customer_id = commitments.customer_id
       and credit_notes.currency = commitments.currency
       and credit_notes.issue_date >= commitments.said_on
    where commitments.kind = 'dispute'
    group by commitments.outcome_id
),

evaluated as (
    select
        commitments.outcome_id,
        commitments.customer_id,
        commitments.currency,
        commitments.kind,
        commitments.said_on,
        commitments.amount,
        commitments.promised_date,
        commitments.hold_until,
        commitments.invoice_ids,
        commitments.reason,
        commitments.recorded_by,
        commitments.superseded_on,
        covered.covered_on,
        covered.paid_amount,
        missed.broken_on,
        missed.missed_instalment,
        resolutions.resolved_on,
        resolutions.resolution,
        resolutions.resolution_id,
        credit_notes_after.credit_note_on,
        -- the last day the commitment holds the ladder (null: until resolved)
        case commitments.kind
            when 'promise' then least(commitments.hold_until, commitments.superseded_on - 1)
            when 'plan' then least(commitments.hold_until, commitments.superseded_on - 1,
                                   missed.broken_on - 1, covered.covered_on - 1)
            when 'paid_claimed' then least(commitments.hold_until, covered.covered_on - 1)
            when 'dispute' then case
                when resolutions.resolution is null then null
                when resolutions.resolution = 'credit_note_expected' then
                    case when credit_notes_after.credit_note_on is not null
                         then greatest(resolutions.resolved_on, credit_notes_after.credit_note_on) - 1 end
                else resolutions.resolved_on - 1
            end
        end as holds_until,
        commitments.kind = 'dispute' and (resolutions.resolution is null
            or (resolutions.resolution = 'credit_note_expected' and credit_notes_after.credit_note_on is null))
            as open_ended
    from commitments
    left join covered using (outcome_id)
    left join missed using (outcome_id)
    left join resolutions using (outcome_id)
    left join credit_notes_after using (outcome_id)
)

select
    evaluated.*,
    case kind
        when 'promise' then case
            when covered_on <= hold_until and (superseded_on is null or covered_on < superseded_on) then 'kept'
            when superseded_on <= hold_until then 'superseded'
            when $as_of > hold_until then 'broken'
            else 'pending' end
        when 'plan' then case
            when broken_on is not null and (superseded_on is null or broken_on <= superseded_on)
                 and (covered_on is null or broken_on <= covered_on) then 'broken'
            when superseded_on is not null and (covered_on is null or superseded_on <= covered_on) then 'superseded'
            when covered_on is not null then 'closed'
            else 'on_track' end
        when 'dispute' then case
            when resolution is null then 'open'
            when resolution = 'credit_note_expected' and credit_note_on is null then 'credit_note_expected'
            else 'resolved' end
        when 'paid_claimed' then case
            when covered_on <= hold_until then 'confirmed'
            when $as_of > hold_until then 'lapsed'
            else 'waiting' end
    end as status,
    -- the day the ladder may act again on what the commitment held (broken promise or plan,
    -- lapsed "we paid", resolved dispute)
    case when open_ended then null else holds_until + 1 end as released_on,
    said_on <= $as_of and (open_ended or $as_of <= holds_until) as holding
from evaluated
