"""A real Prefect server for the tests that need one (deployments, schedules, work pools): its own
PREFECT_HOME (embedded SQLite), a free loopback port, started and waited for until healthy, stopped
at the end. tests/test_deployments.py and tests/test_fleet_prefect.py share it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect(env, *args, timeout=300, check=True, cwd=REPO):
    """The `prefect` CLI against the test's server; a failure shows its output."""
    proc = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@contextmanager
def prefect_server(home: Path, extra_env: dict[str, str], healthy_within_s: float = 180) -> Iterator[tuple[str, dict]]:
    """`with prefect_server(home, {...}) as (api, env):` — the server, and the environment its
    clients use (no PREFECT_* of the caller's; PREFECT_HOME, PREFECT_API_URL, analytics off, then
    extra_env). Its log is home/server.log."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "RELANCE_REPO": str(REPO),
        **extra_env,
    }
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(home),
    )
    try:
        deadline = time.monotonic() + healthy_within_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{api}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None:
                pytest.fail(f"the Prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        else:
            pytest.fail(f"the Prefect server did not become healthy in {healthy_within_s:g} s")
        yield api, env
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
