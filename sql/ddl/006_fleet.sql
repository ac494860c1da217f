-- The additive terms of recovery_metrics (sql/marts/recovery_metric_parts.sql): sums and counts
-- per key, and the histogram of a median. recovery_metrics is computed from them — on one
-- database, and on a fleet's merged database from every shard's (docs/metrics.md "Fleet").
create table if not exists recovery_metric_parts (
    as_of           date not null,
    currency        varchar not null,
    metric          varchar not null,
    dimension       varchar not null,
    dimension_value varchar,
    kind            varchar not null,
    num             decimal(38,2),
    den             decimal(38,2),
    factor          integer
);
