"""What every channel's batch shares: the run's context and the ledger loop written once.

A provider is any object with a `name` and `send(batch) -> list[Result]` (outbox files,
SendGrid, the SMS gateway, the letter printer, the worklist and dossier writers). `deliver`
claims a chunk in the ledger, hands it to the provider, lets the crash hooks run, and records
the results — for every channel alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from tasks.dispatch import ledger
from tasks.dispatch.config import ChannelsConfig
from tasks.dispatch.ledger import Result
from tasks.dispatch.render import Renderer, message_context


class Provider(Protocol):
    name: str

    def send(self, batch: list[Any]) -> list[Result]: ...


@dataclass
class Run:
    """One batch's view of the run: the DuckDB connection (this thread only), dates, folders."""

    con: Any
    as_of: date
    outbox: Path
    send: bool
    now: datetime  # timezone-aware UTC
    cfg: ChannelsConfig
    renderer: Renderer
    errors: list[str] = field(default_factory=list)

    @property
    def now_naive(self) -> datetime:
        return ledger.naive_utc(self.now)

    def channel_dir(self, channel: str) -> Path:
        path = self.outbox / self.as_of.isoformat() / channel
        path.mkdir(parents=True, exist_ok=True)
        return path

    def context(self, row: dict) -> dict:
        return message_context(row, self.cfg, self.as_of, self.renderer.i18n)


def aware_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def fail_before_claim(run: Run, failures: Sequence[tuple[str, str]]) -> list[Result]:
    """Deliveries that could not even be prepared (a template error, a message too long): failed."""
    if not failures:
        return []
    moved = ledger.transition(
        run.con,
        [{"delivery_id": d, "status": "failed", "detail": why} for d, why in failures],
        actor="dispatch",
        now=run.now_naive,
    )
    moved_set = set(moved)
    return [Result(d, "failed", "-", error=why) for d, why in failures if d in moved_set]


def deliver(run: Run, channel: str, items: Sequence[Any], provider: Provider, chunk_size: int) -> list[Result]:
    """claim → provider.send → hooks → record, chunk by chunk (a crash leaves at most one chunk in doubt)."""
    results: list[Result] = []
    chunk_size = max(1, chunk_size)
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        claimed = set(ledger.claim(run.con, [i.delivery_id for i in chunk], provider.name, run.now_naive))
        todo = [i for i in chunk if i.delivery_id in claimed]
        if not todo:
            continue
        answered = provider.send(todo)
        ledger.run_hooks(channel, answered)
        ledger.record(run.con, answered, run.now_naive)
        results.extend(answered)
        aborted = getattr(provider, "aborted", None)
        if aborted:
            run.errors.append(f"{channel}: {aborted}")
            break
    return results


def counts(results: Sequence[Result]) -> dict[str, int]:
    return dict(Counter(r.status for r in results))


def prefect_rate_limit(name: str | None):
    """Inside a flow run: take `n` slots of the Prefect global rate limit `name` per request chunk."""
    if not name:
        return None
    from tasks.step import in_flow_run

    if not in_flow_run():
        return None

    def acquire(n: int) -> None:
        from prefect.concurrency.sync import rate_limit

        rate_limit(name, occupy=n, strict=False)

    return acquire
