-- report: rejected_rows
-- grain: one row per (entity, action, reason) of the source rows rejected or trimmed by the ingest of as_of
-- used by: tasks/report.py ("What needs a person")
select entity, action, reason, count(*) as "rows", min(row_number) as first_row, any_value(source) as source
from rejected_rows
where as_of = $as_of
group by entity, action, reason
order by action, "rows" desc, entity, reason
