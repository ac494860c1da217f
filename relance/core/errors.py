"""Errors a user can act on: the CLI prints their message, never a traceback."""


class UserError(Exception):
    """Something in the user's input or environment that they must fix (a file, a URL, a policy)."""


class SourceError(UserError):
    """A whole source file or table that cannot be read at all."""


class PolicyError(UserError):
    """A policy file that does not validate."""


class DatabaseBusy(UserError):
    """The DuckDB file is held by another process (one writer per file)."""


class DatabaseUnusable(UserError):
    """The DuckDB file cannot be opened or read: empty, not DuckDB, truncated, corrupt, a folder."""
