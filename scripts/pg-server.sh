#!/usr/bin/env bash
# Starts a PostgreSQL server of the tests' own and prints its URL once it accepts connections.
#
#   scripts/pg-server.sh <pid>     the server lives until process <pid> ends
#   scripts/pg-server.sh --nextest a nextest setup script (.config/nextest.toml): the server
#                                  lives as long as nextest; its URL goes to every test as
#                                  SMITHERS_TEST_PG_URL (only when SMITHERS_TEST_STORE=postgres)
#
# The server binaries are the machine's (/usr/lib/postgresql/<version>/bin, the newest, or
# $SMITHERS_PG_BIN). initdb writes into a temporary folder (as the postgres user when run as
# root: the server refuses to run as root); the server listens on a free loopback port, its
# socket in that folder, with durability off (fsync, synchronous_commit: test data). When the
# watched process ends, a watchdog stops the server (pg_ctl -m immediate) and removes the folder.
# With $SMITHERS_PG_INFO set, the folder, the binaries' directory and the command prefix to run
# them as the server's user go to that file, one a line (a test that restarts its server).
set -euo pipefail

if [ "${1:-}" = "--nextest" ]; then
  if [ "${SMITHERS_TEST_STORE:-sqlite}" != "postgres" ]; then exit 0; fi
  watch=$PPID
else
  watch=${1:?usage: pg-server.sh <pid> | --nextest}
fi

bin=${SMITHERS_PG_BIN:-}
if [ -z "$bin" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bin=$d; fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): install Debian's postgresql package (apt-get install postgresql; .ci/run does it), or set SMITHERS_PG_BIN to a directory holding initdb and pg_ctl, or SMITHERS_TEST_PG_URL to a server the tests may create schemas in" >&2
  exit 3
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/smithers-pg.XXXXXX")
as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$dir"
  as=(runuser -u postgres --)
fi
if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log" >&2
  rm -rf "$dir"
  exit 1
fi

started=
for _ in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 40000))
  if "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB" \
      start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "pg_ctl could not start a server:" >&2
  cat "$dir/server.log" >&2 || true
  rm -rf "$dir"
  exit 1
fi

stop="${as[*]} $bin/pg_ctl -D $dir/data -m immediate stop"
setsid sh -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; $stop >/dev/null 2>&1; rm -rf $dir" \
  </dev/null >/dev/null 2>&1 &

url="postgres://postgres@127.0.0.1:$port/postgres"
# A test that restarts its own server (tests/worker-faults.test.js) needs where it lives.
if [ -n "${SMITHERS_PG_INFO:-}" ]; then
  printf '%s\n%s\n%s\n' "$dir" "$bin" "${as[*]}" >"$SMITHERS_PG_INFO"
fi
if [ "${1:-}" = "--nextest" ]; then
  echo "SMITHERS_TEST_PG_URL=$url" >>"$NEXTEST_ENV"
fi
echo "$url"
