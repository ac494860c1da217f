"""Shared fixtures: tiny hand-written sources, and one Prefect test server per session (on demand)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tasks.sources import COLUMNS

IN_CI = os.environ.get("CI", "").lower() == "true"


def _temporary_files_in_memory() -> None:
    """Temporary files (pytest's tmp_path, the Prefect test server's SQLite database, the DuckDB
    files of the tests) on tmpfs when the machine has one and TMPDIR names no other place: the
    tests commit thousands of small transactions, each an fsync on a disk and none in memory. The
    same files, the same code: only where they live. xdist workers and subprocesses inherit it."""
    import tempfile

    shm = Path("/dev/shm")
    if os.environ.get("TMPDIR") or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return
    folder = shm / "relance-tests"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


_temporary_files_in_memory()


def write_source(folder: Path, **entities: list[dict]) -> Path:
    """Write customers/invoices/payments/holds CSV files from lists of dicts (missing keys = empty).

    An entity passed as None is not written at all; customers and invoices default to empty files
    with just a header.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for entity in ("customers", "invoices", "payments", "holds"):
        rows = entities.get(entity, [] if entity in ("customers", "invoices") else None)
        if rows is None:
            continue
        with (folder / f"{entity}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS[entity]), extrasaction="raise")
            w.writeheader()
            for row in rows:
                w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return folder


#: The files that take longest, slowest first. Under pytest-xdist (`make test`: two workers, a file
#: at a time) they are handed out first, so that no long file starts last on a worker while the
#: other worker has nothing left to do. A plain `pytest` keeps the usual order.
SLOWEST_FILES = (
    "test_fleet_prefect.py",
    "test_deployments.py",
    "test_fleet.py",
    "test_faults.py",
    "test_backfill.py",
    "test_ladders_by_segment.py",
    "test_source_postgres.py",
    "test_ladder_properties.py",
    "test_approval_flow.py",
    "test_secrets.py",
    "test_sample_data.py",
    "test_money_exact.py",
    "test_validation.py",
    "test_report.py",
    "test_audit.py",
    "test_letters.py",
    "test_metrics.py",
    "test_ladder.py",
    "test_dispatch.py",
    "test_events.py",
)


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def copy_duckdb(built: Path, to: Path) -> Path:
    """A copy of a DuckDB file built once (by a module- or session-scoped fixture), for one test to
    read or change: the file and its write-ahead log, if one was left."""
    import shutil

    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, to)
    wal = built.with_name(built.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, to.with_name(to.name + ".wal"))
    return to


@pytest.fixture
def source_writer(tmp_path):
    def _write(name: str = "src", **entities):
        return write_source(tmp_path / name, **entities)

    return _write


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server (temporary SQLite database) for the tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
