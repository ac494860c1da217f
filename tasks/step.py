"""`@step`: a plain function outside a flow run, a Prefect task inside one.

The CLI calls the pipeline directly (no server needed); the Prefect flows call the very same
functions, which then show up as task runs with their own logs, retries and states.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def in_flow_run() -> bool:
    """True inside a Prefect flow run (its tasks included): what `step`, the artifacts, the
    approval pause and the database's concurrency slot ask before using Prefect."""
    try:
        from prefect.context import FlowRunContext
    except ImportError:  # pragma: no cover
        return False
    return FlowRunContext.get() is not None


def step(name: str | None = None, **task_kwargs: Any) -> Callable[[F], F]:
    """Declare a pipeline step. Tasks take and return plain values (dates, paths, counts)."""

    def decorate(fn: F) -> F:
        from prefect import task

        task_kwargs.setdefault("cache_policy", None)  # never cache: the ledger guarantees once-only
        prefect_task = task(fn, name=name or fn.__name__, **task_kwargs)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if in_flow_run():
                return prefect_task(*args, **kwargs)
            return fn(*args, **kwargs)

        call.task = prefect_task  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate


def get_logger(name: str = "relance") -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run (logs reach the UI), else a standard logger."""
    try:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    except ImportError:  # pragma: no cover
        pass
    return logging.getLogger(name)


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn for steps that read or write over the network: retry a connection that
    failed or timed out, never a user error (a bad file, policy, credentials) nor a busy database."""
    from relance.core.errors import DatabaseBusy, UserError

    try:
        state.result()
    except DatabaseBusy:
        return False
    except UserError as e:
        text = str(e).lower()
        return any(w in text for w in ("cannot be made", "connection", "timed out", "timeout", "unreachable"))
    except (ConnectionError, TimeoutError, OSError):
        return True
    except Exception as e:  # drivers' own connection errors (psycopg OperationalError, …)
        return type(e).__name__ in {"OperationalError", "InterfaceError", "ConnectTimeout", "ReadTimeout"}
    return False
