"""The fleet's shard key and layout (issue 17; README "Fleet").

A customer's shard is a stable function of its id, the same in Python and in SQL and independent of
library versions: the first 16 hex digits of the MD5 of the id's UTF-8 bytes, read as an unsigned
64-bit integer, modulo the number of shards N:

    shard_of(id, N) = int(md5(id.encode("utf-8")).hexdigest()[:16], 16) % N
    relance_shard(id, n)  (SQL macro) = cast('0x' || md5(id)[1:16] as ubigint) % n

Every rule of relance is per customer (the unit is customer × currency; credit pool, episodes, holds,
outcomes and the ledger never cross customers), so a shard runs the normal nightly job on its own
customers and its results are exactly the single database's rows of those customers.

Layout under ROOT (a folder every worker reaches):
    ROOT/fleet.json                                  {"shards": N, "version": 1}
    ROOT/shard-K/source/<entity>.parquet             the shard's source (tasks/fleet/split.py)
    ROOT/shard-K/relance.duckdb, ROOT/shard-K/outbox the shard's database and outbox
    ROOT/exports/<table>/as_of=D/shard=K/part.parquet the shard's marts for D (tasks/fleet/export.py)
    ROOT/exports/_done/as_of=D/shard=K.json          written last: the shard is complete for D
    ROOT/fleet.duckdb, ROOT/reports/                 the merged database and the fleet's report
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from relance.core.errors import UserError

VERSION = 1

#: The SQL twin of shard_of (DuckDB): md5() gives the lower-case hex digest of the UTF-8 bytes.
SHARD_MACRO = "create or replace macro relance_shard(id, n) as cast(('0x' || md5(id)[1:16]) as ubigint) % n"


class FleetError(UserError):
    """A fleet's layout or configuration the user must fix (shards, root, a failed shard)."""


def shard_of(customer_id: str, shards: int) -> int:
    """The shard (0 … shards − 1) of a customer id."""
    return int(hashlib.md5(customer_id.encode("utf-8")).hexdigest()[:16], 16) % shards


def register_macro(con) -> None:
    con.execute(SHARD_MACRO)


def shard_dir(root: str | Path, k: int) -> Path:
    return Path(root) / f"shard-{k}"


def shard_db(root: str | Path, k: int) -> Path:
    return shard_dir(root, k) / "relance.duckdb"


def shard_source(root: str | Path, k: int) -> Path:
    return shard_dir(root, k) / "source"


def fleet_db(root: str | Path) -> Path:
    return Path(root) / "fleet.duckdb"


def check_shards(shards: int) -> int:
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise FleetError(f"shards must be a whole number of at least 1, not {shards!r}")
    return shards


def read_fleet_config(root: str | Path) -> dict:
    """ROOT/fleet.json; FleetError when the root holds no fleet."""
    path = Path(root) / "fleet.json"
    if not path.exists():
        raise FleetError(f"{root} holds no fleet (no fleet.json): run relance fleet run first")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        check_shards(config["shards"])
    except (ValueError, KeyError, TypeError) as e:
        raise FleetError(f"{path} is not a fleet configuration ({e})") from None
    return config


def write_fleet_config(root: str | Path, shards: int) -> Path:
    """Write ROOT/fleet.json (atomically: a reader sees the old or the new file)."""
    check_shards(shards)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "fleet.json"
    tmp = root / f".fleet.json.{os.getpid()}"
    tmp.write_text(json.dumps({"shards": shards, "version": VERSION}) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def configured_shards(root: str | Path, shards: int | None) -> int:
    """The fleet's N: fleet.json's, or `shards` for a new root; FleetError when they differ (the
    customers' state would be in the wrong shards: `relance fleet reshard` moves it)."""
    path = Path(root) / "fleet.json"
    if not path.exists():
        if shards is None:
            raise FleetError(f"{root} holds no fleet yet: give the number of shards (--shards N)")
        return check_shards(shards)
    have = read_fleet_config(root)["shards"]
    if shards is not None and shards != have:
        raise FleetError(
            f"the fleet at {root} has {have} shards, not {shards}: run with --shards {have}, "
            f"or move the customers first with relance fleet reshard --root {root} --to {shards}"
        )
    return have
