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
#
# With $SMITHERS_PG_SSL set the server speaks TLS (ssl=on; the openssl CLI makes the files, in
# the folder's tls/: ca.crt, the CA that signed server.crt (subjectAltName DNS:localhost and
# IP:127.0.0.1), other-ca.crt, a CA that signed nothing of the server's, and client.crt /
# client.key, a client certificate for the user certuser):
#   SMITHERS_PG_SSL=on     TLS offered, plain connections accepted as before
#   SMITHERS_PG_SSL=only   pg_hba.conf accepts TCP clients over TLS only (hostssl), and the
#                          user certuser only with its client certificate (cert)
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

ssl_opts=
case "${SMITHERS_PG_SSL:-}" in
  "") ;;
  on|only)
    tls="$dir/tls"
    mkdir "$tls"
    (
      cd "$tls"
      ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
      for ca in ca other-ca; do
        openssl req -x509 "${ec[@]}" -days 3 -subj "/CN=smithers test $ca" -keyout "$ca.key" -out "$ca.crt" \
          -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
      done
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
      serial=2
      for who in server:localhost client:certuser; do
        name=${who%%:*}
        openssl req -new "${ec[@]}" -subj "/CN=${who#*:}" -keyout "$name.key" -out "$name.csr"
        openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -set_serial $serial -days 3 \
          -extfile "$name.ext" -out "$name.crt"
        serial=$((serial + 1))
      done
      chmod 600 ./*.key
    ) >"$dir/openssl.log" 2>&1 || { echo "openssl could not make the test certificates:" >&2; cat "$dir/openssl.log" >&2; rm -rf "$dir"; exit 1; }
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$tls"; fi
    ssl_opts="-c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key -c ssl_ca_file=$tls/ca.crt"
    if [ "$SMITHERS_PG_SSL" = only ]; then
      printf '%s\n' "local all all trust" \
        "hostssl all certuser 127.0.0.1/32 cert" \
        "hostssl all all 127.0.0.1/32 trust" >"$dir/data/pg_hba.conf"
      if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/data/pg_hba.conf"; fi
    fi
    ;;
  *) echo "SMITHERS_PG_SSL is on, only or unset (got ${SMITHERS_PG_SSL})" >&2; rm -rf "$dir"; exit 2 ;;
esac

started=
for _ in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 40000))
  if "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB $ssl_opts" \
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
