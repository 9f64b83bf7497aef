#!/bin/sh
# First start: install the system tables, give root (from any host) MARIADB_ROOT_PASSWORD.
# Then run mariadbd on all interfaces.
set -eu
DATADIR=/var/lib/mysql
mkdir -p "$DATADIR" /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld
if [ ! -d "$DATADIR/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is required}"
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "mariadbd did not start" >&2; exit 1; }; sleep 0.5
  done
  pw=$(printf '%s' "$MARIADB_ROOT_PASSWORD" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';
CREATE USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 --port=3306
