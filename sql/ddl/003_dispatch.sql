-- Dispatch's own table (tasks/dispatch): the journal of every delivery status change.
--
-- `deliveries` holds each delivery's current state; `delivery_events` keeps how it got there —
-- claimed for sending, accepted by the provider (with its message id), failed (with the
-- provider's reason), left in doubt by a crash, resolved by a person, approved or rejected, fell
-- back to another channel. Rows are only ever appended: with the sent artefacts in the outbox, it
-- is the evidence of what was sent, when, and on whose decision.
--
-- Delivery statuses added by dispatch to the contract's list (§4):
--   sending   claimed by a run and handed to the provider; a run that ends normally never leaves one
--   in_doubt  found `sending` by a later run: the previous run stopped between the provider call and
--             its record, so the message may or may not have gone. Never re-sent automatically;
--             a person checks the provider (custom_args.delivery_id at SendGrid) and resolves it.
create table if not exists delivery_events (
    delivery_id      varchar not null,
    event_at         timestamp not null,   -- UTC
    status           varchar not null,     -- the status entered
    previous_status  varchar,
    channel          varchar,
    provider         varchar,
    actor            varchar not null,     -- 'dispatch', 'approve:<who>', 'resolve:<who>'
    detail           varchar
);

-- Columns dispatch reads that the ladder's 002_ladder.sql also adds (idempotent: whichever runs
-- first), so that dispatch works on any database of the contract.
alter table dunning_actions add column if not exists indemnity_currency varchar;
alter table deliveries add column if not exists fallback_from varchar;

-- The audit record (004_audit.sql) on what dispatch and the approval write: the run that recorded
-- each event, the run that decided each action. Here too, so that dispatch alone finds them.
alter table delivery_events add column if not exists run_id varchar;
alter table dunning_actions add column if not exists decided_run_id varchar;

-- What a message states (contract §3 "What a message says"): its figures are those of the day it
-- is sent, not of the day its action was decided. Written by dispatch when it renders the message;
-- compare with dunning_actions (amount_due, invoice_ids, charges_total: the decided figures). A
-- change since the decision is also journalled in delivery_events (detail "figures as of …").
alter table deliveries add column if not exists figures_as_of date;                 -- the day whose figures it states
alter table deliveries add column if not exists stated_amount_due decimal(38,2);    -- principal stated
alter table deliveries add column if not exists stated_charges_total decimal(38,2); -- interest (+ indemnity in the unit's currency)
alter table deliveries add column if not exists stated_invoice_ids varchar[];       -- invoices stated
