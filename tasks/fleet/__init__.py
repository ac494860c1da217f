"""The fleet (issue 17): the nightly job and backfills split by customer into shards, each on its own
DuckDB file, merged into one exact database and one report (README "Fleet")."""
