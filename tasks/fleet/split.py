"""split: read the source once (any kind) and write each shard's source as Parquet.

The source is landed by the readers of the nightly ingest (tasks/ingest.py, tasks/sources/: a folder
of CSV or Parquet files, PostgreSQL, an HTTP API) into its rows as read — every value text, as it is,
untrimmed — and each row goes to the shard of its customer_id (tasks/fleet/shards.py, the id trimmed
as staging trims it). Each shard's ingest then validates its rows with the same rules and rejects the
same rows a single database would.

* A row with no usable customer_id (missing or blank) goes to shard 0, where it is rejected as on one
  database; so do the lines that could not be read as rows at all (a CSV line with the wrong number of
  fields: ROOT/shard-0/source/_structural_rejects.parquet).
* Each row keeps its original file and row number (columns _relance_source, _relance_row): the
  shards' rejected_rows name the line of the source, not of the shard's file.
* Payments and holds go with their customer_id. Limits (README "Fleet"): a payment naming the
  invoice of another customer is rejected on its shard as "not a known invoice" (one database says
  "belongs to customer …"), and an id repeated under two customers is kept once per shard.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from tasks import ingest
from tasks.fleet.shards import check_shards, register_macro, shard_source, write_fleet_config
from tasks.sources import ENTITIES, files
from tasks.step import get_logger


def _split_entity(con, entity: str, shards: int, out: dict[int, Path]) -> dict[int, int]:
    """Write raw rows of one entity to each shard's folder; returns rows per shard."""
    con.execute(
        f"""
        create or replace temp table _split as
        select land.*, raw._source as _relance_source, raw._row_number as _relance_row,
               coalesce(relance_shard(raw.customer_id, $n), 0) as _relance_shard
        from raw_{entity} as raw
        join land_{entity} as land on land.rowid = raw._land_row
        order by raw._land_row
        """,
        {"n": shards},
    )
    counts = dict(con.execute("select _relance_shard, count(*) from _split group by all").fetchall())
    for k, folder in out.items():
        target = folder / f"{entity}.parquet"
        con.execute(
            f"copy (select * exclude (_relance_shard) from _split where _relance_shard = {int(k)} "
            f"order by _relance_row) to '{_sql_path(target)}' (format parquet)"
        )
    con.execute("drop table _split")
    return {k: int(counts.get(k, 0)) for k in out}


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def split_source(source: str, root: str | Path, shards: int, source_schema: str | None = None) -> dict:
    """Read `source` once and write ROOT/shard-K/source/<entity>.parquet for K in 0 … shards − 1, and
    ROOT/fleet.json. Returns {"shards", "rows": {entity: total}, "by_shard": {K: {entity: rows}}, "seconds"}.

    Each shard's folder is written beside it first and swapped in whole: a shard never reads half a split."""
    log = get_logger()
    started = time.perf_counter()
    check_shards(shards)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if source_schema is None:
        from relance.core.settings import get_settings

        source_schema = get_settings().source_schema
    workdir = Path(tempfile.mkdtemp(prefix="relance-split-"))
    staging = {k: root / f".split-{os.getpid()}" / f"shard-{k}" for k in range(shards)}
    try:
        folder, labels = ingest._extract(source, workdir, source_schema)
        for path in staging.values():
            path.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        try:
            register_macro(con)
            files.land_folder(con, folder, labels, generated=ingest.source_kind(source) != "files")
            by_shard: dict[int, dict[str, int]] = {k: {} for k in range(shards)}
            for entity in ENTITIES:
                for k, n in _split_entity(con, entity, shards, staging).items():
                    by_shard[k][entity] = n
            structural = con.execute("select count(*) from raw_structural_rejects").fetchone()[0]
            if structural:
                con.execute(
                    f"copy raw_structural_rejects to '{_sql_path(staging[0] / files.STRUCTURAL_REJECTS_FILE)}' "
                    "(format parquet)"
                )
        finally:
            con.close()
        for k, path in staging.items():
            target = shard_source(root, k)
            target.parent.mkdir(parents=True, exist_ok=True)
            old = target.with_name("source.old")
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(path, target)
            shutil.rmtree(old, ignore_errors=True)
        write_fleet_config(root, shards)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(root / f".split-{os.getpid()}", ignore_errors=True)
    rows = {e: sum(by_shard[k][e] for k in by_shard) for e in ENTITIES}
    summary = {
        "shards": shards,
        "rows": rows,
        "structural_rejects": structural,
        "by_shard": by_shard,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info(
        "split %s into %d shards under %s in %.1f s: %s",
        ingest.redact_url(source),
        shards,
        root,
        summary["seconds"],
        rows,
    )
    return summary
