#!/usr/bin/env bash
# Ensures the Postgres (127.0.0.1:5432, user postgres, trust) and Redis
# (127.0.0.1:6379) that the tests use are running. Starts installed servers
# that are stopped; installs them with apt-get when absent (CI machines are
# root). Also installs Chromium for the browser tests and docker-compose for
# the compose file's validation when missing.
set -euo pipefail

need_apt_update=1
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "services: $* missing; install with: sudo apt-get install -y $*" >&2
    return 1
  fi
  if [ "$need_apt_update" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    need_apt_update=0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "services: installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # Tests connect as postgres over TCP without a password: trust loopback only.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '/^# TYPE/a host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  echo "services: starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "services: PostgreSQL did not start" >&2; exit 1; }
fi

if ! redis_up; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "services: installing Redis"
    apt_install redis-server redis-tools
  fi
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/kiln-redis.log"
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  redis_up || { echo "services: Redis did not start" >&2; exit 1; }
fi

if [ "${KILN_BROWSER_TESTS:-1}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing Chromium for the browser tests"
  apt_install chromium || echo "services: chromium could not be installed; browser tests will fail" >&2
fi
# The deploy test validates docker-compose.yml with a Compose implementation:
# the docker compose plugin when present, else Debian's docker-compose (only
# its Python libraries; no Docker engine is installed).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "services: installing docker-compose to validate docker-compose.yml"
  if [ "$(id -u)" = 0 ]; then
    if [ "$need_apt_update" = 1 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; need_apt_update=0; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
      || echo "services: docker-compose could not be installed; the compose test will be skipped" >&2
  fi
fi
echo "services: postgres and redis are up"
