"""Inside a Prefect flow run, dispatch is one task and each channel batch one task — never one per message."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from tests.fakes.scenario import action, build, customer, deliveries, invoice


def test_one_task_per_channel_batch(prefect_server, tmp_path):
    from prefect import flow, get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks.dispatch import dispatch

    n = 5
    db = build(
        tmp_path,
        customers=[customer(f"C{i}") for i in range(n)],
        invoices=[invoice(f"F{i}", f"C{i}", "2026-01-05", "2026-02-04", "10.00") for i in range(n)],
        as_of=date(2026, 3, 16),
        actions=[
            action(f"A{i}", f"C{i}", "reminder_2", [f"F{i}"], deliveries=[(f"E{i}", "email"), (f"L{i}", "letter")])
            for i in range(n)
        ],
    )

    @flow
    def night():
        return dispatch(
            str(db), date(2026, 3, 16), str(tmp_path / "out"), batch_size=2, now=datetime(2026, 3, 16, 9, tzinfo=UTC)
        )

    state = night(return_state=True)
    summary = state.result()
    assert summary["by_channel"] == {"letter": {"sent": 5}, "email": {"sent": 5}} and summary["batches"] == 6
    assert {r["status"] for r in deliveries(db).values()} == {"sent"}

    async def names():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
            return sorted(r.name for r in runs)

    task_names = asyncio.run(names())
    assert [t for t in task_names if not t.startswith("dispatch")] == [
        "email-4",
        "email-5",
        "email-6",
        "letter-1",
        "letter-2",
        "letter-3",
    ]
    assert len(task_names) == 7  # the dispatch step and its six batches
