-- The audit record (tasks/audit.py; README "The audit record"): one row of `runs` per run —
-- the nightly run (CLI or flow), each date of a backfill, `relance dispatch`, `relance approve`
-- and the approval decided in the Prefect UI, `relance resolve`. The row is written when the run
-- starts (outcome 'running') and completed when it ends: a row still 'running' while no run holds
-- the database is a run that crashed.
-- Run at every start (ensure_schema): each statement is idempotent.
create table if not exists runs (
    run_id             varchar primary key,  -- the Prefect flow-run id in a flow run, else a uuid
                                             -- (a backfill date: <id>/<date>; the UI's approval: <flow run id>/approve)
    kind               varchar not null,     -- nightly, backfill, dispatch, approve, resolve
    as_of              date not null,
    flow_run_id        varchar,              -- the Prefect flow run it ran in, if any
    actor              varchar,              -- who: the --by name of a decision, else the OS user
    source             varchar,              -- the source read (no credentials), if the run read one
    started_at         timestamp not null,   -- UTC
    ended_at           timestamp,            -- UTC; null while running (or after a crash)
    outcome            varchar not null,     -- running, completed, failed
    reason             varchar,              -- one line: why it failed
    code_version       varchar,              -- git describe of the checkout, else "relance <version>"
    policy_path        varchar,
    policy_sha256      varchar,              -- sha256 of the policy file's bytes
    channels_path      varchar,
    channels_sha256    varchar,              -- sha256 of templates/channels.yaml (or RELANCE_CHANNELS_CONFIG)
    templates_sha256   varchar,              -- sha256 of the templates folder (every file, by path)
    source_fingerprint json,                 -- per entity: rows and max dates of the source as loaded
    step_counts        json                  -- per step: rows loaded/rejected, actions, deliveries by status, …
);

-- A warehouse from before the audit record has the first shape of `runs` (never written to):
-- its columns mode, finished_at, status and stats give way to those above.
alter table runs drop column if exists mode;
alter table runs drop column if exists finished_at;
alter table runs drop column if exists status;
alter table runs drop column if exists stats;
alter table runs add column if not exists kind varchar;
alter table runs add column if not exists flow_run_id varchar;
alter table runs add column if not exists actor varchar;
alter table runs add column if not exists source varchar;
alter table runs add column if not exists ended_at timestamp;
alter table runs add column if not exists outcome varchar;
alter table runs add column if not exists reason varchar;
alter table runs add column if not exists code_version varchar;
alter table runs add column if not exists policy_path varchar;
alter table runs add column if not exists policy_sha256 varchar;
alter table runs add column if not exists channels_path varchar;
alter table runs add column if not exists channels_sha256 varchar;
alter table runs add column if not exists templates_sha256 varchar;
alter table runs add column if not exists source_fingerprint json;
alter table runs add column if not exists step_counts json;

-- Which run made each action (and, in 003_dispatch.sql: dunning_actions.decided_run_id, the run
-- that decided it — decided_by and decided_at are in 001 —, and delivery_events.run_id, the run
-- that recorded each event: the provider's outcome, an approval, a rejection, a resolution).
alter table dunning_actions add column if not exists run_id varchar;
