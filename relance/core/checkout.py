"""The pull step of prefect.yaml: where a Prefect worker runs the flows.

A process worker runs the deployments' entrypoints (flows/nightly.py, flows/backfill.py) from a
checkout of relance. That checkout is `RELANCE_REPO` when the worker's environment sets it, else
the checkout this worker's relance is installed from (`make install` installs it in editable
mode, so the SQL models and templates the flows read come from there too).
"""

from __future__ import annotations

import os
from pathlib import Path

from relance.core.paths import ROOT

#: A directory is a relance checkout when it holds the deployments' entrypoints.
ENTRYPOINTS = ("flows/nightly.py", "flows/backfill.py")


class CheckoutError(RuntimeError):
    """The worker cannot tell which checkout to run; the message names the variable to set."""


def _is_checkout(path: Path) -> bool:
    return all((path / entry).is_file() for entry in ENTRYPOINTS)


def checkout_directory(environ: dict[str, str] | None = None) -> Path:
    """RELANCE_REPO if set (it must be a checkout), else the installed checkout, else an error."""
    if environ is None:
        from relance.core.settings import get_settings

        named = (get_settings().repo or "").strip()
    else:
        named = environ.get("RELANCE_REPO", "").strip()
    if named:
        path = Path(named).expanduser().resolve()
        if not _is_checkout(path):
            raise CheckoutError(
                f"relance: error: RELANCE_REPO={named} is not a relance checkout (no "
                f"{ENTRYPOINTS[0]} there): set RELANCE_REPO to the checkout this worker runs"
            )
        return path
    if not _is_checkout(ROOT):
        raise CheckoutError(
            f"relance: error: RELANCE_REPO is not set and relance is not installed from a checkout "
            f"({ROOT} has no {ENTRYPOINTS[0]}): set RELANCE_REPO to the relance checkout in the "
            f"worker's environment"
        )
    return ROOT


def set_working_directory() -> dict[str, str]:
    """Prefect pull step: change into the checkout; returns it as `directory`."""
    path = checkout_directory()
    os.chdir(path)
    return {"directory": str(path)}
