"""dispatch: turn each `planned` delivery into a real message, and record what happened.

    dispatch(db, as_of, outbox, send=False, policy=None, batch_size=500, auto_approve=False)

1. Prepare (SQL decides, sql/dispatch/*.sql): deliveries left `sending` by a stopped run become
   `in_doubt` (reported, never re-sent by themselves); planned deliveries of a stage needing
   approval that nobody approved go back to `pending_approval`; with auto_approve everything
   pending is approved; deliveries of earlier actions that are settled, blocked or superseded
   are `skipped`; contacts are checked — an email SendGrid would refuse, or a missing phone,
   falls back to a letter (or `skipped` when the action already sends one, `undeliverable`
   without a postal address).
2. Send: the planned deliveries of live actions dated up to as_of, per channel in this order —
   letter, registered_letter (their PDFs exist before the formal notice's email copy attaches
   them), email, sms, phone, visit, handoff — in batches of batch_size (phone and visit: one
   batch per collector). Each batch is one call of `dispatch_batch`: a Prefect task inside a
   flow run, never one task per message; HTTP requests run in a bounded thread pool inside it.
3. Finish: per post channel, the print-ready batch PDF and its manifest.

Without send the outbox provider writes .eml, PDF, .txt, CSV and HTML files under
outbox/<as_of>/<channel>/ and marks the deliveries `sent` with provider `outbox`; with send,
email goes through SendGrid, SMS through the gateway, letters are files for the print room
(provider `print`), worklists and dossiers files (providers `worklist`, `dossier`).

Returns counts per channel and status, the deliveries in doubt, what is still pending approval
and where the files are.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# The step and its helpers are imported on first use (PEP 562): a worker process that renders
# PDFs imports tasks.dispatch.post alone, not Prefect, DuckDB and pyarrow (seconds per worker).
_LAZY = {
    "dispatch": "tasks.dispatch.main",
    "dispatch_batch": "tasks.dispatch.main",
    "check_contacts": "tasks.dispatch.main",
    "check_templates": "tasks.dispatch.main",
    "CHANNEL_ORDER": "tasks.dispatch.main",
    "approve": "tasks.dispatch.approval",  # re-exported for the CLI
    "resolve": "tasks.dispatch.ledger",
}

__all__ = ["dispatch", "dispatch_batch", "approve", "resolve"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
