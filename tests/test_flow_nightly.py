"""The Prefect flow runs the same code as the CLI, its steps as task runs (on a real Prefect server)."""

from __future__ import annotations

import inspect
from datetime import date

import duckdb

from tests.test_aging import CUSTOMERS, HOLDS, INVOICES, PAYMENTS


def test_nightly_dunning_flow_runs_ingest_and_age_as_tasks(prefect_server, source_writer, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.nightly import nightly_dunning

    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    db = tmp_path / "r.duckdb"
    state = nightly_dunning(as_of=date(2026, 3, 31), source=str(src), db=str(db), return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert summary["ingest"]["rows_loaded"]["invoices"] == 9
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from invoice_snapshot where as_of = '2026-03-31'").fetchone()[0] == 4

    import asyncio

    async def task_names():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
            flow_run = await client.read_flow_run(state.state_details.flow_run_id)
            return sorted(r.name.rsplit("-", 1)[0] for r in runs), flow_run.name

    names, run_name = asyncio.run(task_names())
    assert "ingest" in names and "age" in names
    assert run_name == "nightly-2026-03-31"


def test_flow_parameters_are_named_like_the_cli_options():
    from flows.nightly import nightly_dunning

    params = set(inspect.signature(nightly_dunning.fn).parameters)
    assert {"as_of", "source", "db", "outbox", "send", "auto_approve", "policy", "source_schema"} <= params
