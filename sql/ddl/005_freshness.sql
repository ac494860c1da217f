-- The freshness guard (tasks/freshness.py; docs/policy.md "Freshness guard"): the verdict on the
-- source each nightly run loaded, before anything was planned or sent. The report's banner reads
-- the latest of its date. Run at every start (ensure_schema): each statement is idempotent.
create table if not exists source_freshness (
    run_id       varchar primary key,  -- the audited run (runs.run_id)
    as_of        date not null,
    checked_at   timestamp not null,   -- UTC
    source_kind  varchar,              -- files, postgres, http
    verdict      varchar not null,     -- fresh, stale, stale_allowed, first_run
    stale        boolean not null,     -- the source looked stale (never on a first run)
    allow_stale  boolean not null,     -- --allow-stale / the flow parameter allow_stale was given
    reasons      json,                 -- one line per check that failed
    checks       json                  -- per entity: newest date, gap in business days, limit; rows before/now
);

-- The audit row says it too: the verdict, and whether the run was told to go on regardless.
alter table runs add column if not exists freshness varchar;
alter table runs add column if not exists allow_stale boolean;
