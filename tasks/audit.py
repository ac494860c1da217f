"""The audit record: one row of the DuckDB table `runs` per run (sql/ddl/004_audit.sql).

    with audit.audited(db, "nightly", as_of, policy=policy, source=source) as run:
        loaded = run.step("ingest", ingest(...))           # the step's counts join the record
        escalate(..., run_id=run.run_id)                   # the actions it writes name the run

The row is written when the run starts (outcome `running`) and completed when it ends
(`completed`, or `failed` with a one-line reason; the error itself goes on). It says what ran
(kind, as_of, the Prefect flow run), on whose behalf (actor), with which code (git describe),
which rules (sha256 of the policy file, of the channels settings and of the templates folder),
on which data (a fingerprint of the source as loaded: rows and latest dates per entity) and what
it did (counts per step). A row still `running` while no run holds the database is a run that
crashed. Runs of a Prefect flow take the flow-run id as run_id; a run done again in the same flow
run (a retry) gets `#2`, `#3`…; a backfill writes one row per date (`<id>/<date>`).

`previous_fingerprint(con, before_as_of)` gives the source fingerprint of the last completed run
that read the source before a date: what a freshness check compares tonight's source with.
"""

from __future__ import annotations

import contextvars
import getpass
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from relance import __version__
from relance.core.paths import DEFAULT_POLICY, ROOT, TEMPLATES_DIR
from tasks import warehouse

KINDS = ("nightly", "backfill", "dispatch", "approve", "resolve")
#: The kinds of run that read the source (their fingerprint is that of a fresh load).
SOURCE_KINDS = ("nightly", "backfill")
#: The kinds of run that apply the policy and the wording (their hashes are recorded; a decision's
#: run records none: the action it decides names the run that made it, with that run's hashes).
RULE_KINDS = ("nightly", "backfill", "dispatch")

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("relance_audit_run_id", default=None)


def current_run_id() -> str | None:
    """The run_id of the audited run this code runs in (None outside one)."""
    return _CURRENT.get()


# -- what the run used -------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def sha256_folder(folder: str | Path) -> str | None:
    """sha256 over every file of the folder, in path order: each relative path, NUL, its bytes, NUL."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts):
        h.update(p.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def code_version() -> str:
    """`git describe --tags --always --dirty` of the checkout relance runs from, else the package version."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--tags", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"relance {__version__}"


def flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in (None outside one)."""
    try:
        from prefect.context import FlowRunContext
    except ImportError:  # pragma: no cover
        return None
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _one_line(error: BaseException) -> str:
    from relance.core.errors import UserError

    text = " ".join(str(error).split()) or "(no message)"
    line = text if isinstance(error, UserError) else f"{type(error).__name__}: {text}"
    return line if len(line) <= 500 else line[:499] + "…"


def source_fingerprint(con) -> dict[str, dict[str, Any]] | None:
    """Rows and latest dates per entity of the source as loaded (the stg_* tables); None before any load."""
    have = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' and table_catalog = current_database()"
        ).fetchall()
    }
    if not {"stg_customers", "stg_invoices", "stg_payments", "stg_holds"} <= have:
        return None
    row = con.execute(
        """
        with
        customers as (select count(*) as n from stg_customers),
        invoices as (select count(*) as n, max(issue_date) as issue, max(due_date) as due from stg_invoices),
        payments as (select count(*) as n, max(paid_date) as paid from stg_payments),
        holds as (select count(*) as n, max(start_date) as hold_start, max(end_date) as hold_end from stg_holds)
        select customers.n, invoices.n, invoices.issue, invoices.due, payments.n, payments.paid,
               holds.n, holds.hold_start, holds.hold_end
        from customers, invoices, payments, holds
        """
    ).fetchone()
    iso = lambda d: d.isoformat() if d is not None else None  # noqa: E731
    return {
        "customers": {"rows": row[0]},
        "invoices": {"rows": row[1], "max_issue_date": iso(row[2]), "max_due_date": iso(row[3])},
        "payments": {"rows": row[4], "max_paid_date": iso(row[5])},
        "holds": {"rows": row[6], "max_start_date": iso(row[7]), "max_end_date": iso(row[8])},
    }


def counts_of(summary: Any) -> Any:
    """The counts of a step's summary: numbers kept, lists counted, texts and timings left out."""
    if isinstance(summary, bool) or summary is None:
        return None
    if isinstance(summary, int):
        return summary
    if isinstance(summary, (list, tuple, set)):
        return len(summary)
    if isinstance(summary, dict):
        kept = {str(k): counts_of(v) for k, v in summary.items() if not str(k).startswith("seconds")}
        return {k: v for k, v in kept.items() if v is not None and v != {}}
    return None


# -- the record --------------------------------------------------------------------------------


@dataclass
class Run:
    """One audited run: its id, and the counts of its steps so far."""

    run_id: str
    kind: str
    as_of: date
    flow_run_id: str | None = None
    steps: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None  # set by begin() for a row written ahead
    freshness: str | None = None  # a nightly run: the freshness guard's verdict (tasks/freshness.py)
    allow_stale: bool | None = None  # a nightly run: told to go on though the source looks stale

    def step(self, name: str, summary: Any) -> Any:
        """Record the counts of a step's summary under its name; returns the summary unchanged."""
        counts = counts_of(summary)
        if counts not in (None, {}):
            self.steps[name] = counts
        return summary


def _free_ids(con, bases: list[str]) -> list[str]:
    """Each id as given, or with the first `#n` suffix not taken yet (a run done again under its id)."""
    taken = {
        r[0]
        for r in con.execute(
            """
        select run_id from runs
        where regexp_replace(run_id, '#[0-9]+$', '') in (select unnest($bases::varchar[]))
        """,
            {"bases": bases},
        ).fetchall()
    }
    free = []
    for base in bases:
        n = 1
        while (base if n == 1 else f"{base}#{n}") in taken:
            n += 1
        free.append(base if n == 1 else f"{base}#{n}")
    return free


def start(
    con,
    kind: str,
    as_of: date,
    *,
    policy: str | Path | None = None,
    source: str | None = None,
    actor: str | None = None,
    channels: str | Path | None = None,
    run_id: str | None = None,
) -> Run:
    """Write the run's row (outcome `running`) and return the Run. run_id: the id to use (made free by a
    `#n` suffix if taken); default the Prefect flow-run id in a flow run, else a new uuid."""
    [run] = _start(
        con,
        kind,
        [as_of],
        [run_id or flow_run_id() or str(uuid.uuid4())],
        policy=policy,
        source=source,
        actor=actor,
        channels=channels,
    )
    return run


def start_dates(con, kind: str, dates: Sequence[date], *, run_id: str | None = None, **kwargs: Any) -> list[Run]:
    """One row per date, written ahead in one statement (outcome `running`): run ids `<base>/<date>`,
    base `run_id`, else the flow-run id or a new uuid — e.g. a backfill's dates, each completed
    (finish) as its replay ends."""
    base = run_id or flow_run_id() or str(uuid.uuid4())
    return _start(con, kind, list(dates), [f"{base}/{d.isoformat()}" for d in dates], **kwargs)


def _start(
    con,
    kind: str,
    dates: list[date],
    ids: list[str],
    *,
    policy: str | Path | None = None,
    source: str | None = None,
    actor: str | None = None,
    channels: str | Path | None = None,
) -> list[Run]:
    from tasks.dispatch.config import config_path  # the channels file dispatch reads

    if kind not in KINDS:
        raise ValueError(f"audit: unknown kind {kind!r}")
    warehouse.ensure_schema(con)
    flow_run = flow_run_id()
    ids = _free_ids(con, ids)
    rules = kind in RULE_KINDS  # what the run used: hashed once for all its rows
    policy_path = (Path(policy) if policy else DEFAULT_POLICY) if rules else None
    channels_path = config_path(channels) if rules else None
    if actor is None:
        try:
            actor = getpass.getuser()
        except Exception:  # no login name (a container without a passwd entry)
            actor = None
    if source is not None:
        from relance.core.urls import redact_url

        source = redact_url(source)
    con.execute(
        """
        insert into runs (run_id, kind, as_of, flow_run_id, actor, source, started_at, outcome, code_version,
                          policy_path, policy_sha256, channels_path, channels_sha256, templates_sha256)
        select unnest($ids::varchar[]), $kind, unnest($dates::date[]), $flow_run_id, $actor, $source, $now,
               'running', $code, $policy_path, $policy_sha, $channels_path, $channels_sha, $templates_sha
        """,
        {
            "ids": ids,
            "dates": dates,
            "kind": kind,
            "flow_run_id": flow_run,
            "actor": actor,
            "source": source,
            "now": _now(),
            "code": code_version(),
            "policy_path": str(policy_path) if rules else None,
            "policy_sha": sha256_file(policy_path) if rules else None,
            "channels_path": str(channels_path) if rules else None,
            "channels_sha": sha256_file(channels_path) if rules else None,
            "templates_sha": sha256_folder(TEMPLATES_DIR) if rules else None,
        },
    )
    return [Run(i, kind, d, flow_run) for i, d in zip(ids, dates)]


def begin(run: Run) -> None:
    """The run's work starts now (for rows written ahead, as a backfill writes its dates): the row's
    started_at becomes this moment when it is finished."""
    run.started_at = _now()


def finish(con, run: Run, error: BaseException | str | None = None, fingerprint: dict | None | bool = True) -> None:
    """Complete the row: outcome `completed`, or `failed` with the error's one line; the step counts
    and the source fingerprint (True: read it now — but none for a run that reads the source and
    failed before its ingest ended: the staging would be an earlier load's; a dict: that one; None: none)."""
    if fingerprint is True:
        stale = error is not None and run.kind in SOURCE_KINDS and "ingest" not in run.steps
        fingerprint = None if stale else source_fingerprint(con)
    reason = None if error is None else error if isinstance(error, str) else _one_line(error)
    con.execute(
        """
        update runs set started_at = coalesce($started, started_at), ended_at = $now, outcome = $outcome,
                        reason = $reason, source_fingerprint = $fingerprint, step_counts = $steps,
                        freshness = coalesce($freshness, freshness), allow_stale = coalesce($allow_stale, allow_stale)
        where run_id = $id
        """,
        {
            "freshness": run.freshness,
            "allow_stale": run.allow_stale,
            "started": run.started_at,
            "now": _now(),
            "outcome": "completed" if error is None else "failed",
            "reason": reason,
            "fingerprint": None if fingerprint is None else json.dumps(fingerprint),
            "steps": json.dumps(run.steps),
            "id": run.run_id,
        },
    )


@contextmanager
def audited(
    db: str | Path,
    kind: str,
    as_of: date,
    *,
    con=None,
    policy: str | Path | None = None,
    source: str | None = None,
    actor: str | None = None,
    channels: str | Path | None = None,
    run_id: str | None = None,
) -> Iterator[Run]:
    """`with audited(db, kind, as_of, …) as run:` — the run's row, written at the start and completed at
    the end (failed with the reason when the block raises; the error goes on). On `con` when given
    (a caller holding the database open), else on a connection of its own at the start and the end."""

    @contextmanager
    def connection():
        if con is not None:
            yield con
        else:
            with warehouse.open_db(db) as own:
                yield own

    with connection() as c:
        run = start(c, kind, as_of, policy=policy, source=source, actor=actor, channels=channels, run_id=run_id)
    token = _CURRENT.set(run.run_id)
    try:
        yield run
    except BaseException as e:
        _CURRENT.reset(token)
        try:
            with connection() as c:
                finish(c, run, e)
        except Exception as inner:  # never hide the run's own error behind the record's
            from tasks.step import get_logger

            get_logger().error("audit: run %s not recorded as failed (%s)", run.run_id, inner)
        raise
    _CURRENT.reset(token)
    with connection() as c:
        finish(c, run)


def fail_running(con, run_ids: Sequence[str], error: BaseException) -> None:
    """Rows of these ids still `running` become `failed` with the error's one line (e.g. the dates of a
    backfill that stopped: the date it stopped on, and those it did not reach)."""
    con.execute(
        """
        update runs set ended_at = $now, outcome = 'failed', reason = $reason
        where outcome = 'running' and run_id in (select unnest($ids::varchar[]))
        """,
        {"now": _now(), "reason": _one_line(error), "ids": list(run_ids)},
    )


# -- reading it back ---------------------------------------------------------------------------


def previous_run(con, before_as_of: date, kinds: Sequence[str] = SOURCE_KINDS) -> tuple[date, dict] | None:
    """(as_of, source fingerprint) of the latest completed run that read the source (nightly or
    backfill), dated before `before_as_of` (latest as_of, then latest end); None when there is none."""
    row = con.execute(
        """
        select as_of, source_fingerprint from runs
        where outcome = 'completed' and as_of < $before and list_contains($kinds, kind)
          and source_fingerprint is not null
        order by as_of desc, ended_at desc
        limit 1
        """,
        {"before": before_as_of, "kinds": list(kinds)},
    ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def previous_fingerprint(con, before_as_of: date, kinds: Sequence[str] = SOURCE_KINDS) -> dict | None:
    """The source fingerprint of previous_run.

    The shape: {"customers": {"rows": n}, "invoices": {"rows": n, "max_issue_date": "YYYY-MM-DD",
    "max_due_date": …}, "payments": {"rows": n, "max_paid_date": …}, "holds": {"rows": n,
    "max_start_date": …, "max_end_date": …}} (dates ISO strings, null when the entity is empty)."""
    run = previous_run(con, before_as_of, kinds)
    return run[1] if run else None
