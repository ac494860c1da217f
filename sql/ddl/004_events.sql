-- Provider events (tasks/events.py): what SendGrid and the SMS gateway tell about a message after
-- they accepted it. The receiver (`relance events serve`) never opens this file: it appends
-- verified events to a journal; `relance events apply` (and the start of each nightly run) loads
-- them here. Run at every start (ensure_schema): each statement is idempotent.

-- delivery_events gains the provider's own events beside dispatch's status changes
-- (actor 'sendgrid' or 'sms'): event_key makes a replayed or duplicated event a no-op.
alter table delivery_events add column if not exists event_key varchar;       -- sendgrid:<sg_event_id>, sms:<sid>:<status>
alter table delivery_events add column if not exists provider_event varchar;  -- the provider's word: bounce, delivered, undelivered, …

-- What the provider last proved about a sent message, by precedence (not arrival order):
-- accepted < delivered < undelivered < bounced = dropped < complained. Null: nothing sent by a provider.
alter table deliveries add column if not exists delivery_state varchar;

-- Events whose delivery relance does not know (another sender on the same SendGrid account, a
-- delivery of a deleted database …): kept apart, never dropped, re-matched at each apply.
create table if not exists unmatched_events (
    event_key       varchar primary key,
    source          varchar not null,   -- sendgrid | sms
    received_at     timestamp not null, -- UTC, when the receiver journaled it
    event_at        timestamp,          -- UTC, the provider's timestamp
    provider_event  varchar,
    state           varchar,            -- the delivery_state it would prove
    delivery_id     varchar,            -- custom_args.delivery_id when present
    provider_message_id varchar,
    address         varchar,            -- the email address or phone number it is about
    hard            boolean,            -- a hard bounce or a drop
    detail          varchar,
    raw             varchar not null    -- the event as received, JSON
);

-- Contacts a provider proved bad or that the customer refused. An email hard-bounced or dropped
-- ('bad') is treated like a malformed address while it is the customer's address; an unsubscribe or
-- spam report ('opted_out') stops only the emails of the policy's stopped_by_opt_out stages
-- (preventive by default; docs/policy.md).
create table if not exists contact_flags (
    customer_id  varchar not null,
    channel      varchar not null,   -- email | sms
    address      varchar,            -- the address the event was about (null: unknown, any address)
    flag         varchar not null,   -- bad | opted_out
    reason       varchar,
    delivery_id  varchar,
    flagged_at   timestamp not null,
    primary key (customer_id, channel, flag)
);

-- Registered letters' postal tracking (`relance post import`): deposit, receipt or return. The
-- formal notice's deadline runs from the receipt date (templates/channels.yaml
-- formal_notice.deadline_days), not from the sending date.
create table if not exists postal_tracking (
    delivery_id      varchar primary key,
    tracking_number  varchar,
    deposited_on     date,
    received_on      date,               -- null while in transit, or when returned (refused / unclaimed: first presented)
    outcome          varchar not null,   -- in_transit | received | returned
    return_reason    varchar,            -- refused | unclaimed | … when returned
    deadline_on      date,               -- formal notice: received_on + deadline_days
    imported_at      timestamp not null
);
-- A letter refused or left unclaimed counts as received on its first presentation: received_on
-- is then that day (presented_on keeps it too); batch_reference: the print batch reference the
-- tracking export named the letter by, if it did (docs/policy.md "Registered letters").
alter table postal_tracking add column if not exists presented_on date;
alter table postal_tracking add column if not exists batch_reference varchar;
