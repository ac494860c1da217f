#!/usr/bin/env bash
# make stop: stops the worker started by make serve, waits for it to exit, then stops the server.
# Each process gets SIGTERM, up to RELANCE_STOP_TIMEOUT_S seconds (default 30) to exit, then
# SIGKILL. A pid file is removed only once its process is gone (or when the pid it holds is no
# longer a Prefect process of ours); what could not be stopped is reported and the exit status is 1.
# Running it again when nothing is left is harmless.
set -u
cd "$(dirname "$0")/.."
PREFECT_HOME="${PREFECT_HOME:-$PWD/.relance/prefect}"
GRACE="${RELANCE_STOP_TIMEOUT_S:-30}"
failed=0

alive() {   # a zombie has exited: only its parent's wait is missing
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $stat && $stat != Z* ]]
}

gone_within() {   # gone_within PID SECONDS
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

stop() {   # stop worker|server
  local what=$1 pidfile="$PREFECT_HOME/$1.pid" pid args
  if [ ! -f "$pidfile" ]; then
    echo "$what: not running (no $pidfile)"
    return 0
  fi
  pid=$(tr -d '[:space:]' <"$pidfile")
  if [[ ! $pid =~ ^[0-9]+$ ]]; then
    echo "$what: $pidfile holds no pid; removed it"
    rm -f "$pidfile"
    return 0
  fi
  if ! alive "$pid"; then
    echo "$what: not running (pid $pid had exited); removed $pidfile"
    rm -f "$pidfile"
    return 0
  fi
  args=$(ps -o args= -p "$pid" 2>/dev/null)
  if [[ $args != *prefect*"$what start"* ]]; then
    echo "$what: pid $pid is no longer the Prefect $what (it is: ${args:0:80}); not touching it, removed the stale $pidfile"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  if gone_within "$pid" "$GRACE"; then
    echo "$what: stopped (pid $pid)"
  else
    echo "$what: pid $pid still running ${GRACE} s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    if gone_within "$pid" 10; then
      echo "$what: killed (pid $pid)"
    else
      echo "relance: error: could not stop the $what (pid $pid); $pidfile is kept" >&2
      failed=1
      return 1
    fi
  fi
  rm -f "$pidfile"
}

# the worker first: a flow run it is executing still reports its state to the server
stop worker
stop server
exit "$failed"
