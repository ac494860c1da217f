"""make serve's last check: the Prefect server's services work — its scheduler has created the
next runs of the nightly deployment and its log shows no service error. Prints one line; exit 0
when it is so, 1 otherwise (the line then starts with `relance: error:`).

    python scripts/check_server.py API_URL SERVER_LOG [--deployment nightly_dunning/nightly] [--timeout 60]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

#: What a failing service leaves in the server's log (a scheduler loop that fails logs the
#: exception with its traceback, e.g. SQLAlchemy 2.1's "Can't evaluate bulk DML statement").
ERROR_LINE = re.compile(r"Traceback \(most recent call last\)|\| ERROR +\||bulk DML|InvalidRequestError")


def service_error(log: Path) -> str | None:
    """The most telling error line of the server log, or None."""
    if not log.is_file():
        return None
    lines = log.read_text(errors="replace").splitlines()
    hits = [i for i, line in enumerate(lines) if ERROR_LINE.search(line)]
    if not hits:
        return None
    # the exception itself is the last line of a traceback block: prefer it to "Traceback ..."
    for i in hits:
        for line in lines[i : i + 200]:
            if re.match(r"^[\w.]+(Error|Exception): ", line.strip()):
                return line.strip()
    return lines[hits[0]].strip()


def scheduled_runs(api: str, deployment: str) -> list[dict]:
    dep = requests.get(f"{api}/deployments/name/{deployment}", timeout=10)
    dep.raise_for_status()
    runs = requests.post(
        f"{api}/flow_runs/filter",
        timeout=10,
        json={
            "deployments": {"id": {"any_": [dep.json()["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC",
        },
    )
    runs.raise_for_status()
    return [r for r in runs.json() if r.get("auto_scheduled")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("api")
    parser.add_argument("log", type=Path)
    parser.add_argument("--deployment", default="nightly_dunning/nightly")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    runs: list[dict] = []
    while True:
        error = service_error(args.log)
        if error:
            print(
                f"relance: error: the Prefect server's services are failing: {error[:300]} (see {args.log})",
                file=sys.stderr,
            )
            return 1
        try:
            runs = scheduled_runs(args.api, args.deployment)
        except requests.RequestException as exc:
            print(f"relance: error: cannot read {args.deployment} from {args.api}: {exc}", file=sys.stderr)
            return 1
        if runs or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if not runs:
        print(
            f"relance: error: the Prefect scheduler created no run of {args.deployment} within "
            f"{args.timeout:g} s (see {args.log})",
            file=sys.stderr,
        )
        return 1
    first = datetime.fromisoformat(runs[0]["expected_start_time"])
    paris = first.astimezone(ZoneInfo("Europe/Paris"))
    print(
        f"scheduler: ok — next {args.deployment} run {paris:%Y-%m-%d %H:%M} Europe/Paris "
        f"({first.astimezone(ZoneInfo('UTC')):%H:%M} UTC), no service error in the server log"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
