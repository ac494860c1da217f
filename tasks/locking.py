"""One writer per DuckDB file, also across Prefect runs on several workers.

DuckDB itself refuses a second process opening the file (tasks.warehouse.connect raises
DatabaseBusy with the holder's pid). Inside a Prefect flow run, the run first takes the slot of
a global concurrency limit named after the database file — `relance-db-<hash of its absolute
path>`, limit 1, created when missing — so that a second run (nightly, backfill, a retry) on the
same file waits for the first to finish instead of failing half-way on the lock. Outside a flow
run (the CLI) nothing is asked of Prefect.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.step import get_logger, in_flow_run


def limit_name(db: str | Path) -> str:
    """The concurrency limit of one DuckDB file: `relance-db-` and 12 hex digits of its absolute path."""
    digest = hashlib.sha256(str(Path(db).expanduser().resolve()).encode()).hexdigest()[:12]
    return f"relance-db-{digest}"


@contextmanager
def exclusive_db(db: str | Path, timeout_seconds: float | None = None) -> Iterator[str | None]:
    """Hold the database's concurrency slot for the body (inside a flow run); yields the limit's name."""
    if not in_flow_run():
        yield None
        return
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    log = get_logger()
    name = limit_name(db)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    started = time.perf_counter()
    log.info("database %s: waiting for its concurrency slot %s (one run per DuckDB file)", Path(db).name, name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        waited = time.perf_counter() - started
        log.info("database slot %s taken after %.1f s", name, waited)
        yield name
