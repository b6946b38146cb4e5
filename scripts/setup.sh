#!/usr/bin/env bash
# Set-up that `make test` and `make dev` do themselves on a fresh Debian
# machine with Go: whatever is missing is installed with apt-get when this
# runs as root; otherwise the exact command is printed and, for what the
# run cannot do without, the run stops. It ends with one line saying what
# it did.
#
#   scripts/setup.sh test   Postgres running on 127.0.0.1:5432 (started, or
#                           installed and started), redis-server installed
#                           (tests start their own), Chromium and
#                           docker-compose for the browser and compose tests,
#                           openssl and curl for the http driver's docs test
#   scripts/setup.sh dev    Postgres and Redis installed (kiln-dev starts
#                           its own when none runs)
#
# KILN_TEST_DATABASE_URL set: the tests use that Postgres; none is started.
# KILN_BROWSER_TESTS=0: Chromium is not installed (the browser tests skip).
set -uo pipefail

mode=${1:-test}
case "$mode" in test | dev) ;; *)
  echo "usage: scripts/setup.sh test|dev" >&2
  exit 2
  ;;
esac

did=()     # what this run did, for the one line at the end
missing=() # packages needed but not installable here (not root)
optional=() # packages wanted for optional tests, not installable here
updated=0
root=0
[ "$(id -u)" = 0 ] && root=1

# install PKG...: apt-get install when root; returns 1 otherwise.
install() {
  [ "$root" = 1 ] || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "setup: installing $* with apt-get..." >&2 # minutes of silence otherwise
  if [ "$updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

# Postgres: the tests create their databases on 127.0.0.1:5432 (user
# postgres, trust on loopback); make dev only needs the binaries.
if [ "$mode" = test ] && [ -n "${KILN_TEST_DATABASE_URL:-}" ]; then
  did+=("postgres: KILN_TEST_DATABASE_URL")
elif pg_up; then
  did+=("postgres: already running")
else
  if [ -z "$(pg_bin)" ]; then
    if install postgresql postgresql-client; then
      did+=("postgres: installed")
    else
      missing+=(postgresql postgresql-client)
    fi
  fi
  if [ "$mode" = test ] && [ -n "$(pg_bin)" ]; then
    if [ "$root" = 1 ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
      ver=$(ls /etc/postgresql | sort -V | tail -1)
      hba=/etc/postgresql/$ver/main/pg_hba.conf
      # The tests connect as postgres over TCP without a password: trust
      # loopback only.
      if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '/^# TYPE/a host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      fi
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 ||
        pg_ctlcluster "$ver" main start >/dev/null 2>&1
      for _ in $(seq 1 30); do pg_up && break; sleep 1; done
      if pg_up; then
        did+=("postgres: started $ver")
      else
        echo "setup: PostgreSQL $ver did not start (see /var/log/postgresql/)" >&2
        exit 1
      fi
    elif ! pg_up; then
      echo "setup: PostgreSQL is installed but not running on 127.0.0.1:5432, and only root can start the system's cluster here." >&2
      echo "setup: start it:  sudo pg_ctlcluster $(ls /etc/postgresql 2>/dev/null | sort -V | tail -1) main start   (or set KILN_TEST_DATABASE_URL)" >&2
      exit 1
    fi
  elif [ "$mode" = dev ] && [ -n "$(pg_bin)" ]; then
    did+=("postgres: installed (kiln-dev starts its own)")
  fi
fi

# Redis: the tests start private redis-servers; make dev reuses one on
# 6379 or starts its own. Either way the binary is what is needed.
if command -v redis-server >/dev/null 2>&1; then
  did+=("redis-server: installed")
elif install redis-server redis-tools; then
  did+=("redis-server: installed now")
else
  missing+=(redis-server redis-tools)
fi

if [ "$mode" = test ]; then
  if [ "${KILN_BROWSER_TESTS:-1}" = 0 ]; then
    did+=("chromium: KILN_BROWSER_TESTS=0")
  elif command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    did+=("chromium: installed")
  elif install chromium; then
    did+=("chromium: installed now")
  else
    optional+=(chromium)
  fi
  # The http driver's docs test runs the documented openssl and curl lines.
  if command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
    did+=("openssl, curl: installed")
  elif install openssl curl; then
    did+=("openssl, curl: installed now")
  else
    optional+=(openssl curl)
  fi
  # The deploy test validates docker-compose.yml with the compose plugin or
  # Debian's docker-compose (its Python libraries; no Docker engine).
  if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    did+=("compose: installed")
  elif install docker-compose; then
    did+=("compose: installed now")
  else
    optional+=(docker-compose)
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: make $mode needs ${missing[*]}, which only root can install. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "and then make $mode again." >&2
  exit 1
fi
if [ "${#optional[@]}" -gt 0 ]; then
  did+=("not installed (not root; their tests will be skipped): ${optional[*]} — sudo apt-get install -y ${optional[*]}")
fi
line="make $mode set-up:"
for d in "${did[@]}"; do line="$line $d;"; done
echo "${line%;}"
