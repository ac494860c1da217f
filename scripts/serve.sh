#!/usr/bin/env bash
# make serve: a local Prefect server (embedded SQLite), the `relance` process work pool, the
# deployments of prefect.yaml, and a worker — then prints the UI address. Idempotent: re-running
# it reuses a server that is already up and redeploys.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
BIN="$REPO/.venv/bin"
PORT="${RELANCE_PREFECT_PORT:-4200}"
POOL="${RELANCE_WORK_POOL:-relance}"
export PREFECT_HOME="${PREFECT_HOME:-$REPO/.relance/prefect}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:$PORT/api}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# the worker runs this checkout (relance.core.checkout, the pull step) unless RELANCE_REPO names another
LOGS="$REPO/.relance/logs"
mkdir -p "$LOGS" "$PREFECT_HOME"

healthy() { "$BIN/python" - "$PREFECT_API_URL" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/health", timeout=2)
except Exception:
    sys.exit(1)
PY
}

if healthy; then
  echo "Prefect server already up at $PREFECT_API_URL"
else
  echo "starting the Prefect server on 127.0.0.1:$PORT (log: $LOGS/server.log)"
  nohup "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$LOGS/server.log" 2>&1 &
  echo $! >"$PREFECT_HOME/server.pid"
  for _ in $(seq 1 120); do healthy && break; sleep 1; done
  healthy || { echo "the Prefect server did not start; see $LOGS/server.log" >&2; exit 1; }
fi

"$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 || \
  "$BIN/prefect" work-pool create "$POOL" --type process >/dev/null
echo "work pool: $POOL"

if [ ! -f "$REPO/.relance/sample/invoices.csv" ] && [ ! -f "$REPO/.relance/sample/invoices.parquet" ]; then
  "$BIN/relance" sample-data --out "$REPO/.relance/sample" --customers "${CUSTOMERS:-2000}"
fi

"$BIN/prefect" --no-prompt deploy --all --prefect-file "$REPO/prefect.yaml"

# The server's services must work: its scheduler creates the next nightly runs within seconds of
# the deploy, and its log shows no service error (one line either way; the worker is not started
# when they fail: the server stays up for inspection, `make stop` stops it).
"$BIN/python" "$REPO/scripts/check_server.py" "$PREFECT_API_URL" "$LOGS/server.log" || exit 1

if [ -f "$PREFECT_HOME/worker.pid" ] && kill -0 "$(cat "$PREFECT_HOME/worker.pid")" 2>/dev/null; then
  echo "worker already running (pid $(cat "$PREFECT_HOME/worker.pid"))"
else
  nohup "$BIN/prefect" worker start --pool "$POOL" --type process >"$LOGS/worker.log" 2>&1 &
  echo $! >"$PREFECT_HOME/worker.pid"
  echo "worker started (log: $LOGS/worker.log)"
fi

echo
echo "Prefect UI: http://127.0.0.1:$PORT  (deployments: nightly_dunning/nightly, backfill/backfill)"
echo "  a nightly run with formal notices to approve pauses: open it, read the relance-approvals artifact, press Resume"
echo "  alerts on failure: set RELANCE_ALERT_WEBHOOK and/or RELANCE_ALERT_EMAIL before make serve (the worker's environment)"
echo "stop with: make stop"
