"""The DuckDB warehouse: opens the file (one writer at a time) and runs the SQL models in sql/.

A model is one file under sql/ (staging/, intermediate/, marts/, dispatch/) holding one SELECT and
a `-- materialized:` header line. Its header comments say what it is:

    -- grain: one row per invoice open at as_of
    -- materialized: incremental_as_of     (or: table, view, temp, temp_view)
    -- depends: int_credit_pool, int_direct_settlement   (only where the SQL does not show it)
    -- macros: allocation                   (the sql/macros/<name>.sql it calls)

`table` replaces the table, `view` a view, `temp` builds a connection-local temp table,
`temp_view` a connection-local view (nothing is copied: its readers scan the tables under it),
and `incremental_as_of` replaces the rows of the run date only (delete where as_of = $as_of,
then insert by name), so that earlier dates stay. Parameters are DuckDB named parameters
(`$as_of`), bound by value — values are never formatted into SQL text. A temp view keeps its
parameters in session variables of its own (`SET VARIABLE relance_<view>_as_of = $as_of`, read
back with `getvariable('relance_<view>_as_of')`), set again each time the view is built.

The graph comes from the models themselves (like dbt's ref()): a model's inputs are the relations
it selects from — every `from`/`join` identifier that names another model (a CTE of its own is
not one) — plus the names of its `-- depends:` line, for the inputs the SQL names in a way the
parser cannot see (a string given to a table macro: `allocation_open_invoices('int_credit_pool',
…)`). `build(con, "marts/unit_stage", params)` runs the target and the models upstream of it in
dependency order (`dbt run -s +unit_stage`), stopping at stored tables: an upstream model
materialized `table` or `incremental_as_of` (staging, the marts) is a source a step reads as it
is, built only when it is itself a target — as are tables no model builds (raw_*, the contract's
tables, the policy's temp tables). A cycle, a `-- depends:` naming no model, or a `from int_x` /
`stg_x` naming no model is a ModelGraphError naming the models. `-- macros: allocation` loads
sql/macros/allocation.sql (temp table macros) on the connection before the model is built: rules
that serve two inputs (the allocation on the run date's source and on the metrics' date-stamped
one, the charges on the ladder's claims and on the send date's) are written once as a macro taking
its input relations by name, and each use is a model of its own naming its inputs.

Each mart and key intermediate model states its grain and tests in a YAML file beside it
(`sql/marts/unit_stage.yml`, like a dbt schema file): key columns (unique + not_null),
not_null, relationships and accepted_values (a list, or values taken from the policy:
`policy: stages` / `policy: buckets` / `policy: channels`). `check_model(con, model, params)` returns the violations;
`require_keys(...)` raises ModelCheckFailed on a violated key or not_null (the nightly run calls it
on the marts it wrote before anything is sent).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import duckdb

from relance.core.errors import DatabaseBusy, DatabaseUnusable, UserError
from relance.core.paths import SQL_DIR

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_MATERIALIZED = re.compile(r"^--\s*materialized:\s*(\w+)", re.M)
_DEPENDS = re.compile(r"^--\s*depends:(.*)$", re.M)
_MACROS = re.compile(r"^--\s*macros:(.*)$", re.M)
#: a string literal or a comment, whichever starts first (an apostrophe in a comment is no string)
_STRING_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|--[^\n]*")
#: a relation read: `from x` / `join x`, not a table function (`from unnest(…)`)
_RELATION = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)\b(?!\s*\()", re.I)
#: a CTE of the model itself: `name as (`
_CTE = re.compile(r"\b([a-z_][a-z0-9_]*)\s+as\s+(?:not\s+)?(?:materialized\s+)?\(", re.I)
#: folders of sql/ holding models (ddl, macros, reports and seeds hold none)
MODEL_DIRS = ("staging", "intermediate", "marts", "dispatch")
#: materializations a step reads as they are when they are upstream of its target (stored tables)
STORED = ("table", "incremental_as_of")


class ModelGraphError(ValueError):
    """The models' graph cannot be built: a cycle, or an input naming no model."""


class ModelCheckFailed(UserError):
    """A model's key or not_null test failed on the rows a run wrote: the run stops before sending."""


def connect(db: str | Path, *, read_only: bool = False, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file. When another process holds it, wait up to `wait_s` seconds
    (default: env RELANCE_DB_WAIT_S, else 0) for it to let go, then raise a clear DatabaseBusy."""
    db = Path(db)
    if db.is_dir():
        raise DatabaseUnusable(f"database {db} is a folder, not a DuckDB file: give a file path with --db")
    if not read_only:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"database {db}: cannot create its folder {db.parent} ({e.strerror or e})") from None
    if wait_s is None:
        from relance.core.settings import get_settings

        wait_s = get_settings().db_wait_s
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        try:
            con = duckdb.connect(str(db), read_only=read_only)
            break
        except duckdb.IOException as e:
            msg = str(e)
            if not re.search(r"\block\b", msg, re.I):  # not a lock held by another process ("block" is not one)
                raise unusable(db, e) from None
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            holder = re.search(r"PID (\d+)", msg)
            who = f" (process {holder.group(1)})" if holder else ""
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            raise DatabaseBusy(
                f"database {db} is in use by another relance run{who}{waited}; DuckDB allows one writer "
                "per file. Wait for that run to finish (or set RELANCE_DB_WAIT_S to wait), then try again."
            ) from None
        except duckdb.Error as e:  # a corrupt block (checksum), a file of another version …
            raise unusable(db, e) from None
    con.execute("set preserve_insertion_order = true")
    return con


def unusable(db: str | Path, e: BaseException) -> DatabaseUnusable:
    """One sentence for a --db file DuckDB cannot open or read, naming the file and what to do."""
    db = Path(db)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    low = text.lower()
    keep = "restore it from a backup (a new database would not know the dunning history nor what was already sent)"
    try:
        size = db.stat().st_size
    except OSError:
        size = None
    if "not a valid duckdb database file" in low:
        what = "is empty (0 bytes)" if size == 0 else "is not a DuckDB database file"
        return DatabaseUnusable(
            f"database {db} {what}: give another --db, or move this file away to start a new database"
        )
    if "could not read enough bytes" in low:
        return DatabaseUnusable(f"database {db} is truncated ({size} bytes): {keep}")
    if "corrupt" in low or "checksum" in low:
        return DatabaseUnusable(f"database {db} is corrupt ({text}): {keep}")
    if "no space left" in low:
        return DatabaseUnusable(f"database {db}: the disk is full ({text}); free some space and run again")
    if "permission denied" in low or "read-only file system" in low:
        return DatabaseUnusable(f"database {db} cannot be opened for writing ({text}): check the file's permissions")
    if "version" in low and ("storage" in low or "serialization" in low or "duckdb" in low):
        return DatabaseUnusable(f"database {db} was written by another DuckDB version ({text})")
    return DatabaseUnusable(f"database {db} cannot be opened: {text}")


@contextmanager
def open_db(db: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(db, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract's tables if they do not exist yet (sql/ddl/*.sql, in name order)."""
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))


def bind_params(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The `$name` parameters `sql` uses (a `$name` in a comment is none), taken from `params` (a
    KeyError names any missing)."""
    names = set(_PARAM.findall(_STRING_OR_COMMENT.sub(lambda m: m.group() if m.group().startswith("'") else " ", sql)))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"SQL parameters not supplied: {sorted(missing)}")
    return {k: params[k] for k in names}


def model_sql(model: str) -> str:
    return (SQL_DIR / f"{model}.sql").read_text(encoding="utf-8")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with transaction(con):` — one transaction, committed at the end of the block, rolled back on
    error. Blocks do not nest (DuckDB refuses a BEGIN inside a transaction): a commit here is a real
    commit, which the delivery ledger relies on (a claim is committed before any provider call).
    Other connections and cursors (measure_on works on its own cursor) see nothing before it."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def run_model(con: duckdb.DuckDBPyConnection, model: str, params: dict[str, Any] | None = None) -> float:
    """Build one model (e.g. "marts/aged_balance"), and only it; returns the seconds it took."""
    sql = model_sql(model)
    kind = (_MATERIALIZED.search(sql) or [None, "table"])[1]
    name = Path(model).name
    select = sql.strip().rstrip(";")
    bound = bind_params(select, params or {})
    started = time.perf_counter()
    for macros in _header_names(_MACROS, sql):
        con.execute((SQL_DIR / "macros" / f"{macros}.sql").read_text(encoding="utf-8"))
    if kind == "table":
        con.execute(f"create or replace table {name} as {select}", bound)
    elif kind == "view":
        if bound:
            raise ValueError(f"{model}: a view cannot take parameters ({sorted(bound)})")
        con.execute(f"create or replace view {name} as {select}")
    elif kind == "temp":
        con.execute(f"create or replace temp table {name} as {select}", bound)
    elif kind == "temp_view":
        for key, value in bound.items():  # one variable per view and parameter: views never share one
            con.execute(f"set variable relance_{name}_{key} = ${key}", {key: value})
        body = _PARAM.sub(lambda m: f"getvariable('relance_{name}_{m.group(1)}')", select)
        con.execute(f"create or replace temp view {name} as {body}")
    elif kind == "incremental_as_of":
        if "as_of" not in bound:
            bound["as_of"] = (params or {})["as_of"]
        with transaction(con):
            con.execute(f"delete from {name} where as_of = $as_of", {"as_of": bound["as_of"]})
            con.execute(f"insert into {name} by name {select}", bound)
    else:
        raise ValueError(f"{model}: unknown materialization {kind!r}")
    return time.perf_counter() - started


def run_models(con: duckdb.DuckDBPyConnection, models: list[str], params: dict[str, Any]) -> dict[str, float]:
    """Build these models, in this order, and nothing else (build() finds the order itself)."""
    return {m: run_model(con, m, params) for m in models}


# --- the graph ------------------------------------------------------------------------------


def _header_names(pattern: re.Pattern, sql: str) -> list[str]:
    return [n.strip() for line in pattern.findall(sql) for n in line.split(",") if n.strip()]


@lru_cache(maxsize=1)
def models() -> dict[str, str]:
    """Every model by its relation name: {"int_open_invoices": "intermediate/int_open_invoices", …}."""
    found: dict[str, str] = {}
    for folder in MODEL_DIRS:
        for path in sorted((SQL_DIR / folder).glob("*.sql")):
            if not _MATERIALIZED.search(path.read_text(encoding="utf-8")):
                continue  # a query (sql/dispatch/pick.sql …), not a model
            if path.stem in found:
                raise ModelGraphError(f"two models are named {path.stem}: {found[path.stem]} and {folder}/{path.stem}")
            found[path.stem] = f"{folder}/{path.stem}"
    return found


@cache
def materialization(model: str) -> str:
    return (_MATERIALIZED.search(model_sql(model)) or [None, "table"])[1]


@cache
def inputs(model: str) -> tuple[str, ...]:
    """The models `model` reads (paths, sorted): its from/join relations that are models, and its
    `-- depends:` line. A relation looking like a model (int_*, stg_*) that is none is an error."""
    sql = model_sql(model)
    known = models()
    named = _header_names(_DEPENDS, sql)
    for dep in named:
        if dep not in known:
            raise ModelGraphError(f"{model}: `-- depends: {dep}` names no model under sql/ ({', '.join(MODEL_DIRS)})")
    code = _STRING_OR_COMMENT.sub(lambda m: "''" if m.group().startswith("'") else " ", sql)
    ctes = {c.lower() for c in _CTE.findall(code)}
    found = set(named)
    for rel in (r.lower() for r in _RELATION.findall(code)):
        if rel in ctes or rel == Path(model).name:
            continue
        if rel in known:
            found.add(rel)
        elif rel.startswith(("int_", "stg_")):
            raise ModelGraphError(f"{model} reads {rel}, which is no model under sql/ ({', '.join(MODEL_DIRS)})")
    return tuple(sorted(known[n] for n in found))


def plan(targets: str | list[str] | tuple[str, ...], built: Any = ()) -> list[str]:
    """The models to build for `targets`, in dependency order: the targets and every model upstream
    of them, except stored tables that are no target (sources) and the models in `built` (already
    built on this connection for these parameters)."""
    wanted = [targets] if isinstance(targets, str) else list(targets)
    known = set(models().values())
    for t in wanted:
        if t not in known:
            raise ModelGraphError(f"no model {t} under sql/ (give e.g. marts/unit_stage)")
    order: list[str] = []
    state: dict[str, str] = {}  # visiting / done
    path: list[str] = []

    def visit(model: str) -> None:
        if state.get(model) == "done":
            return
        if state.get(model) == "visiting":
            cycle = path[path.index(model) :] + [model]
            raise ModelGraphError(f"the models form a cycle: {' -> '.join(cycle)}")
        state[model] = "visiting"
        path.append(model)
        for dep in inputs(model):
            if dep in wanted or (dep not in built and materialization(dep) not in STORED):
                visit(dep)
            else:  # a source to this build: its own inputs are not this build's concern
                _check_acyclic(dep)
        path.pop()
        state[model] = "done"
        order.append(model)

    for t in wanted:
        visit(t)
    return [m for m in order if m in wanted or m not in built]


@cache
def _check_acyclic(model: str, _seen: tuple[str, ...] = ()) -> None:
    if model in _seen:
        raise ModelGraphError(f"the models form a cycle: {' -> '.join(_seen[_seen.index(model) :] + (model,))}")
    for dep in inputs(model):
        _check_acyclic(dep, _seen + (model,))


def build(
    con: duckdb.DuckDBPyConnection,
    targets: str | list[str] | tuple[str, ...],
    params: dict[str, Any],
    built: Any = (),
) -> dict[str, float]:
    """Build `targets` (e.g. "marts/unit_stage", or a list) and the models upstream of them that are
    not stored tables, in dependency order; returns {model: seconds}. built: models already built
    on this connection for these parameters (a dict from an earlier build of the same step), not
    built again."""
    return run_models(con, plan(targets, built), params)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = con.execute(sql, params or {}).fetchone()
    return row[0] if row else None


# --- the models' tests (sql/**/<model>.yml) ----------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """A model's test that failed: how many rows, and a few of them (ids and codes only)."""

    model: str
    test: str  # unique, not_null, relationships, accepted_values
    column: str  # the column(s) tested, e.g. "as_of, invoice_id"
    rows: int
    sample: tuple[tuple, ...]

    def __str__(self) -> str:
        shown = ", ".join("(" + ", ".join("null" if v is None else str(v) for v in row) + ")" for row in self.sample)
        return f"{Path(self.model).name}: {self.test} on {self.column} fails for {self.rows} row(s), e.g. {shown}"


@cache
def model_spec(model: str) -> dict:
    """The model's YAML (sql/<model>.yml) as a dict, {} when it has none."""
    import yaml

    path = SQL_DIR / f"{model}.yml"
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = [m for m in doc.get("models", []) if m.get("name") == Path(model).name]
    if len(specs) != 1:
        raise ModelGraphError(f"{path}: expected one entry `models: - name: {Path(model).name}`")
    return specs[0]


def specified_models() -> list[str]:
    """The models that have a YAML beside them."""
    return [m for m in sorted(models().values()) if (SQL_DIR / f"{m}.yml").exists()]


def model_tests(model: str, policy: Any = None, *, keys_only: bool = False) -> list[tuple[str, str, dict]]:
    """(test, column(s), arguments) of the model's YAML: the key (unique, and not_null on each of
    its columns), then each column's tests. `policy: stages` / `policy: buckets` in an
    accepted_values take the codes of `policy` (a relance.core.policy.Policy; the shipped one if None)."""
    spec = model_spec(model)
    tests: list[tuple[str, str, dict]] = []
    key = spec.get("key") or []
    if key:
        tests.append(("unique", ", ".join(key), {"columns": list(key)}))
        tests += [("not_null", c, {}) for c in key]
    for col in spec.get("columns", []):
        for test in col.get("tests", []):
            name, args = (test, {}) if isinstance(test, str) else next(iter(test.items()))
            args = dict(args or {})
            if keys_only and name != "not_null":
                continue
            if name == "accepted_values":
                values = list(args.get("values", []))
                if args.get("policy"):
                    if policy is None:
                        from relance.core.policy import load_policy

                        policy = load_policy(None)
                    values += _policy_values(policy, args["policy"])
                args = {"values": values}
            if name not in ("unique", "not_null", "relationships", "accepted_values"):
                raise ModelGraphError(f"{model}.yml: unknown test {name!r} on column {col['name']}")
            tests.append((name, col["name"], args))
    return tests


def _policy_values(policy: Any, what: str) -> list[str]:
    if what == "stages":
        return [s.code for s in policy.stages]
    if what == "buckets":
        return [row[1] for row in policy.bucket_rows()]
    if what == "channels":
        from relance.core.policy import CHANNELS

        return list(CHANNELS)
    raise ModelGraphError(f"accepted_values: unknown `policy: {what}` (stages, buckets or channels)")


def _bad_rows(model: str, test: str, column: str, args: dict, rows: str) -> tuple[str, list[str]]:
    """(a query of the rows failing the test, the columns that show them: ids and codes)."""
    if test == "unique":
        shown = list(args["columns"])
        return f"select {', '.join(shown)} from {rows} group by all having count(*) > 1", shown
    if test == "not_null":
        shown = model_spec(model).get("key") or [column]
        return f"select {', '.join(shown)} from {rows} where {column} is null", shown
    if test == "accepted_values":
        return (
            f"select distinct {column} from {rows} "
            f"where {column} is not null and not list_contains($accepted_{column}, {column})"
        ), [column]
    if test == "relationships":
        to, field = args["to"], args["field"]
        return (
            f"select distinct {column} from {rows} where {column} is not null "
            f"and {column} not in (select {field} from {to} where {field} is not null)"
        ), [column]
    raise ModelGraphError(f"unknown test {test}")


def check_model(
    con: duckdb.DuckDBPyConnection,
    model: str,
    params: dict[str, Any] | None = None,
    *,
    policy: Any = None,
    keys_only: bool = False,
) -> list[Violation]:
    """Run the model's YAML tests on its rows — of params' as_of only when the model is
    incremental_as_of — and return the violations (empty when all pass). keys_only: the key and
    not_null tests only (what the nightly run checks before sending)."""
    params = params or {}
    where, bind = "", {}
    if materialization(model) == "incremental_as_of" and params.get("as_of") is not None:
        where, bind = " where as_of = $as_of", {"as_of": params["as_of"]}
    tests = model_tests(model, policy, keys_only=keys_only)
    if not tests:
        return []
    for test, column, args in tests:
        if test == "accepted_values":
            bind[f"accepted_{column}"] = args["values"]
    queries = [_bad_rows(model, *t, "checked") for t in tests]

    # one query counts every test's failing rows (the run date's rows read once); the few failing
    # rows are fetched only for a test that fails
    def cheap(test: str, column: str, args: dict, bad: str) -> str:
        # key and not_null as plain aggregates over the rows; the others as counts of their query
        if test == "not_null":
            return f"count(*) filter (where {column} is null)"
        if test == "unique":
            return f"count(*) - count(distinct ({', '.join(args['columns'])}))"
        return f"(select count(*) from ({bad}))"

    counts = con.execute(
        f"with checked as (select * from {Path(model).name}{where}) select "
        + ", ".join(cheap(*t, q[0]) for t, q in zip(tests, queries))
        + " from checked",
        bind,
    ).fetchone()
    found = []
    for (test, column, _), (bad, shown), count in zip(tests, queries, counts):
        if count:  # only a failing test fetches its rows: how many, and the first five
            listed = ", ".join(f"cast({c} as varchar)" for c in shown)
            sql = (
                f"with checked as (select * from {Path(model).name}{where}) "
                f"select count(*), list([{listed}] order by {', '.join(shown)})[1:5] from ({bad})"
            )
            rows, sample = con.execute(sql, bind_params(sql, bind)).fetchone()
            found.append(Violation(model, test, column, rows, tuple(tuple(r) for r in sample or ())))
    return found


def check_models(
    con: duckdb.DuckDBPyConnection,
    models_: list[str] | None = None,
    params: dict[str, Any] | None = None,
    *,
    policy: Any = None,
    keys_only: bool = False,
) -> list[Violation]:
    """check_model for each model (default: every model with a YAML)."""
    return [
        v
        for m in (models_ or specified_models())
        for v in check_model(con, m, params, policy=policy, keys_only=keys_only)
    ]


def require_keys(con: duckdb.DuckDBPyConnection, models_: list[str], params: dict[str, Any]) -> float:
    """The key and not_null tests of these models (their rows of params' as_of): raise
    ModelCheckFailed naming the model, the test and a few offending keys when one fails. Returns the
    seconds it took."""
    started = time.perf_counter()
    found = check_models(con, models_, params, keys_only=True)
    if found:
        raise ModelCheckFailed(
            f"model check failed for {params.get('as_of')}: {'; '.join(str(v) for v in found[:3])}"
            f"{f' (and {len(found) - 3} more)' if len(found) > 3 else ''}; nothing is sent"
        )
    return time.perf_counter() - started
