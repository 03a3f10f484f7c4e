#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on their local ports; starts them if they are installed
# but stopped. It never installs a database server: that is the machine owner's choice.
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {
  for _ in $(seq 1 30); do port_open "$1" "$2" && return 0; sleep 1; done
  return 1
}

if ! port_open "$PGHOST" "$PGPORT"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_for "$PGHOST" "$PGPORT" || { echo "PostgreSQL is not reachable on $PGHOST:$PGPORT" >&2; exit 1; }
fi
echo "PostgreSQL is reachable on $PGHOST:$PGPORT"

if ! port_open "$REDIS_HOST" "$REDIS_PORT"; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Starting Redis..."
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
  fi
  wait_for "$REDIS_HOST" "$REDIS_PORT" || { echo "Redis is not reachable on $REDIS_HOST:$REDIS_PORT" >&2; exit 1; }
fi
echo "Redis is reachable on $REDIS_HOST:$REDIS_PORT"
