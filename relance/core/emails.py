"""Email addresses: the one rule shared by ingest (an address is loaded or dropped, contract §1)
and dispatch (who gets an email, contract §3), in Python and, through ``register``, in SQL.

An address is valid when SendGrid accepts it: a plain ``local@domain`` (no display name, no
surrounding spaces), a dot-atom local part of at most 64 characters (no leading, trailing or
doubled dot), a domain of dotted labels (letters, digits, inner hyphens, at most 63 each) ending
in a letters-only top-level domain of two or more letters (or an ``xn--`` IDN one), at most 254
characters in all. Unicode must be written in its ASCII (punycode) form.
"""

from __future__ import annotations

import re
from functools import lru_cache

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
EMAIL_RE = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+{_TLD}")


@lru_cache(maxsize=1 << 16)
def valid_email(address: str | None) -> bool:
    """A plain address SendGrid accepts: dot-atom local part (≤ 64), a dotted domain, ≤ 254 chars."""
    if not address or not isinstance(address, str) or len(address) > 254:
        return False
    if not EMAIL_RE.fullmatch(address):
        return False
    return len(address.rsplit("@", 1)[0]) <= 64


def register(con) -> None:
    """Register email_ok(address) → boolean (null for a null address) on a DuckDB connection:
    the staging models' check, the very function dispatch calls."""
    import duckdb
    import pyarrow as pa

    def email_ok(address):  # a pyarrow array (no annotations: DuckDB evaluates them)
        return pa.array([None if a is None else valid_email(a) for a in address.to_pylist()], type=pa.bool_())

    try:
        con.remove_function("email_ok")
    except duckdb.Error:  # not registered on this connection yet
        pass
    con.create_function(
        "email_ok", email_ok, ["VARCHAR"], "BOOLEAN", type="arrow", null_handling="special", side_effects=False
    )
