#!/bin/sh
# First start: initdb with the given superuser and password, create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sql. Then run postgres as the postgres user.
set -eu
BIN=/usr/lib/postgresql/15/bin
USER_NAME=${POSTGRES_USER:-postgres}
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_pg "$BIN/initdb" -D "$PGDATA" -U "$USER_NAME" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  as_pg "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k /run/postgresql" -w start >/dev/null
  db=${POSTGRES_DB:-$USER_NAME}
  if [ "$db" != postgres ]; then
    as_pg psql -q -h /run/postgresql -U "$USER_NAME" -d postgres -c "CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] || continue
    as_pg psql -q -v ON_ERROR_STOP=1 -h /run/postgresql -U "$USER_NAME" -d "$db" -f "$f"
  done
  as_pg "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -k /run/postgresql
