#!/usr/bin/env bash
# The body of `make test` (after scripts/setup.sh, vet and build):
#   1. refuses a tree that tracks a file over 1 MB (binaries, dumps);
#   2. puts a key in each database 1-15 of the developer's Redis on
#      127.0.0.1:6379, when one runs, to prove afterwards that the tests
#      left it alone (they use private redis-servers);
#   3. runs every package's tests, with KILN_SKIP_REPORT naming a file that
#      tests skipped for a missing tool append a line to;
#   4. ends with a summary: the tests skipped and why, and the Redis check,
#      so a skip is seen without -v.
# KILN_TEST_REDIS_CANARY=0 turns step 2 off.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

# 1. No file over 1 MB in git.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  big=$(git ls-files -z --cached | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$1 > 1048576 { printf "  %s (%.1f MB)\n", $2, $1 / 1048576 }')
  if [ -n "$big" ]; then
    echo "make test: the tree tracks files over 1 MB (binaries and data do not belong in git):" >&2
    echo "$big" >&2
    echo "make test: git rm --cached them (and add them to .gitignore)." >&2
    exit 1
  fi
fi

# 2. A canary in each of the developer's Redis databases 1-15.
canary=""
canary_note=""
rcli() { redis-cli -h 127.0.0.1 -p 6379 "$@"; }
if [ "${KILN_TEST_REDIS_CANARY:-1}" = 0 ]; then
  canary_note="not checked (KILN_TEST_REDIS_CANARY=0)"
elif [ -n "${KILN_TEST_REDIS_URL:-}" ]; then
  canary_note="not checked (KILN_TEST_REDIS_URL hands the tests a database)"
elif ! command -v redis-cli >/dev/null 2>&1 || [ "$(rcli ping 2>/dev/null)" != PONG ]; then
  canary_note="not checked (no Redis answers on 127.0.0.1:6379 without a password)"
else
  canary="kiln:make-test:canary:$$:$RANDOM"
  for db in $(seq 1 15); do
    rcli -n "$db" set "$canary" untouched ex 7200 >/dev/null
  done
fi

# 3. The tests.
skips=$(mktemp "${TMPDIR:-/tmp}/kiln-skips.XXXXXX")
trap 'rm -f "$skips"' EXIT
export KILN_SKIP_REPORT="$skips"
# Packages run two at a time (the machine has 2 cores); each test gets its
# own database and its own Redis, so they do not collide.
$GO test -count=1 -p 2 -timeout 12m ./...
rc=$?

# 4. The summary.
echo
echo "make test summary"
if [ -s "$skips" ]; then
  echo "  skipped for a missing tool ($(sort -u "$skips" | wc -l)):"
  sort -u "$skips" | sed 's/^/    /'
else
  echo "  no test skipped for a missing tool"
fi
if [ -n "$canary" ]; then
  lost=()
  for db in $(seq 1 15); do
    [ "$(rcli -n "$db" get "$canary" 2>/dev/null)" = untouched ] || lost+=("$db")
    rcli -n "$db" del "$canary" >/dev/null 2>&1
  done
  if [ "${#lost[@]}" -gt 0 ]; then
    echo "  your Redis on 127.0.0.1:6379: databases ${lost[*]} lost a key while the tests ran (was something else flushing them?)"
    rc=1
  else
    echo "  your Redis on 127.0.0.1:6379: databases 1-15 untouched (a key placed in each before the tests is still there)"
  fi
else
  echo "  your Redis on 127.0.0.1:6379: $canary_note"
fi
if [ "$rc" = 0 ]; then
  echo "  PASS"
else
  echo "  FAIL (exit $rc)"
fi
exit "$rc"
