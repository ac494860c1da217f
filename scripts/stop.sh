#!/usr/bin/env bash
# make stop: stops the worker and the server started by make serve.
set -u
cd "$(dirname "$0")/.."
PREFECT_HOME="${PREFECT_HOME:-$PWD/.relance/prefect}"
for what in worker server; do
  pidfile="$PREFECT_HOME/$what.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && echo "stopped the $what"
  fi
  rm -f "$pidfile"
done
