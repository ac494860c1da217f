#!/usr/bin/env bash
# Issue 13 §6: bring the whole checkout to the lint rules of pyproject.toml ([tool.ruff]) and
# .sqlfluff, once (after merges); afterwards `make lint` keeps it there. Idempotent.
#
#   bash scripts/dev/format_all.sh [REPO]
#
#   1. ruff check --fix   safe fixes only: import order, pyupgrade (datetime.UTC, X | None, ...)
#   2. ruff format        the formatter (line length 120, double quotes)
#   3. sqlfluff fix sql/  layout and case only (the rules of .sqlfluff never change a query's meaning)
#   4. make lint's checks: prints what is left for a hand fix (exit 1 if anything is)
set -uo pipefail
REPO="${1:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}"
cd "$REPO"
BIN="${BIN:-.venv/bin}"
for tool in ruff sqlfluff; do
    test -x "$BIN/$tool" || { echo "format_all: $BIN/$tool missing: make install" >&2; exit 2; }
done
"$BIN/ruff" check --fix --quiet . || true
"$BIN/ruff" format --quiet .
"$BIN/sqlfluff" fix sql/ --processes 2 --quiet --disable-progress-bar >/dev/null || true
echo "format_all: fixed; left for a hand fix, if anything:"
status=0
"$BIN/ruff" check --quiet . || status=1
"$BIN/ruff" format --check --quiet . || status=1
"$BIN/sqlfluff" lint sql/ --processes 2 --disable-progress-bar --nofail >/tmp/format_all-sqlfluff.$$ 2>&1
grep -E "FAIL|L: " /tmp/format_all-sqlfluff.$$ && status=1
rm -f /tmp/format_all-sqlfluff.$$
[ $status = 0 ] && echo "format_all: nothing: make lint passes"
exit $status
