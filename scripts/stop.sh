#!/usr/bin/env bash
# make stop: stops the worker started by make serve, waits for it to exit, then stops the server.
# Each process gets SIGTERM, up to RELANCE_STOP_TIMEOUT_S seconds (default 10) to exit, then
# SIGKILL (Prefect 3.8.8's worker never exits on SIGTERM alone: its shutdown hangs). Flow runs the
# worker had started (its child processes) are not killed: the server is stopped only once they
# have finished, else it is left up for them and `make stop` says so (run it again later).
# A pid file is removed only once its process is gone (or when the pid it holds is no longer a
# Prefect process of ours); what could not be stopped is reported, exit status 1. Running it
# again when nothing is left is harmless.
set -u
# (ps -ww: the whole command line, even when COLUMNS is set, as under pytest-xdist: else ps cuts it
# at COLUMNS characters and a long path hides "worker start")
cd "$(dirname "$0")/.."
PREFECT_HOME="${PREFECT_HOME:-$PWD/.relance/prefect}"
GRACE="${RELANCE_STOP_TIMEOUT_S:-10}"
FLOW_RUNS="$PREFECT_HOME/flow-runs.pid"
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
  args=$(ps -ww -o args= -p "$pid" 2>/dev/null)
  if [[ $args != *prefect*"$what start"* ]]; then
    echo "$what: pid $pid is no longer the Prefect $what (it is: ${args:0:80}); not touching it, removed the stale $pidfile"
    rm -f "$pidfile"
    return 0
  fi
  if [ "$what" = worker ]; then   # its flow runs, to wait for before the server is stopped
    ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ' >>"$FLOW_RUNS"
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

flow_runs_done() {   # waits up to GRACE for the flow-run processes the worker left
  [ -s "$FLOW_RUNS" ] || { rm -f "$FLOW_RUNS"; return 0; }
  local pid left=() deadline=$((SECONDS + GRACE))
  while :; do
    left=()
    for pid in $(cat "$FLOW_RUNS"); do
      alive "$pid" && [[ $(ps -ww -o args= -p "$pid" 2>/dev/null) == *prefect* ]] && left+=("$pid")
    done
    ((${#left[@]} == 0 || SECONDS >= deadline)) && break
    sleep 0.2
  done
  if ((${#left[@]})); then
    printf '%s\n' "${left[@]}" >"$FLOW_RUNS"
    echo "relance: error: flow run still running (pid ${left[*]}): the server is left up so that it can finish; run make stop again later" >&2
    return 1
  fi
  echo "flow runs: finished"
  rm -f "$FLOW_RUNS"
}

# the worker first, then the flow runs it had started (they report their states to the server)
stop worker
if flow_runs_done; then
  stop server
else
  failed=1
fi
exit "$failed"
