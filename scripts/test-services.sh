#!/usr/bin/env bash
# Starts and stops the real servers heapfleet's tests talk to: throwaway instances in one
# temporary directory, on free loopback ports. Today that is PostgreSQL (the catalog).
#
#   eval "$(scripts/test-services.sh start)"   starts them and prints `export` lines:
#       HEAPFLEET_TEST_SERVICES_DIR   the directory to pass to `stop`
#       HEAPFLEET_TEST_POSTGRES_URL   a connection string for the tests
#   scripts/test-services.sh stop DIR          stops them and removes DIR
#   scripts/test-services.sh pause DIR         stops PostgreSQL as a crash would (immediate
#                                              shutdown), keeping its data, for fault tests
#   scripts/test-services.sh resume DIR        starts it again on the same data and port
#
# PostgreSQL comes from Debian's packages (scripts/install-test-deps.sh installs them) or from
# initdb/pg_ctl on PATH. As root the server runs as the `postgres` OS user (initdb refuses to
# run as root); otherwise as the current user. The cluster trusts loopback connections and runs
# with fsync off: it only ever holds test data. Progress and start-up times go to stderr;
# stdout carries only the exports. If `start` fails it leaves nothing behind.
set -euo pipefail
shopt -s inherit_errexit

# Marks a directory this script made, so `stop` never removes anything else.
readonly MARKER=.heapfleet-test-services

log() { echo "test-services: $*" >&2; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Prints the directory holding initdb and pg_ctl: the newest Debian install, else PATH.
postgres_bin_dir() {
  local debian_bin
  debian_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$debian_bin" ] && [ -x "$debian_bin/initdb" ]; then
    echo "$debian_bin"
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  else
    return 1
  fi
}

# Runs a PostgreSQL tool as the user that owns the cluster.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Succeeds when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a loopback port nothing listens on.
free_port() {
  local attempt port
  for attempt in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# pg_start BIN PG_DIR PORT: starts the cluster in PG_DIR/data on PORT and waits until it is ready.
# fsync=off loses data only when the machine crashes, which throws the cluster away anyway. A
# commit still writes its WAL to the kernel before it returns (synchronous_commit stays on):
# otherwise the crash `pause` simulates would lose commits the tests saw succeed.
pg_start() {
  local bin=$1 pg_dir=$2 port=$3
  as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $port -k '$pg_dir' -c listen_addresses=127.0.0.1 -c fsync=off \
        -c full_page_writes=off" \
    start >/dev/null
}

# start_postgres DIR: initdb + pg_ctl start in DIR/postgres; prints the exports.
start_postgres() {
  local services_dir=$1 bin pg_dir started_ms initdb_ms port attempt
  bin=$(postgres_bin_dir) || { log "PostgreSQL is not installed (see scripts/install-test-deps.sh)"; return 1; }
  pg_dir=$services_dir/postgres
  mkdir "$pg_dir"
  if [ "$(id -u)" = 0 ]; then
    # The postgres user must reach its directory through ours.
    chmod 711 "$services_dir"
    chown postgres: "$pg_dir"
    if ! runuser -u postgres -- test -w "$pg_dir"; then
      log "the postgres user cannot write to $pg_dir; set TMPDIR to a directory it can reach"
      return 1
    fi
  fi

  started_ms=$(now_ms)
  # --no-locale: the cluster does not depend on which locales this machine has generated.
  if ! as_postgres "$bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-locale \
      --no-sync >"$pg_dir/initdb.log" 2>&1; then
    log "initdb failed:"; cat "$pg_dir/initdb.log" >&2
    return 1
  fi
  initdb_ms=$(( $(now_ms) - started_ms ))

  # Another process may take the port between the check and the start: try a few.
  for attempt in 1 2 3; do
    port=$(free_port) || { log "found no free loopback port"; return 1; }
    started_ms=$(now_ms)
    if pg_start "$bin" "$pg_dir" "$port"; then
      # `resume` starts the server again on this port.
      echo "$port" >"$pg_dir/port"
      log "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port:" \
        "initdb $initdb_ms ms, server ready in $(( $(now_ms) - started_ms )) ms"
      echo "export HEAPFLEET_TEST_POSTGRES_URL='host=127.0.0.1 port=$port user=postgres dbname=postgres'"
      return 0
    fi
    log "PostgreSQL did not start on port $port (attempt $attempt):"
    tail -n 5 "$pg_dir/server.log" >&2 || true
  done
  return 1
}

# stop_postgres DIR: stops the cluster in DIR/postgres, if one runs there.
stop_postgres() {
  local pg_dir=$1/postgres bin
  if [ -f "$pg_dir/data/postmaster.pid" ] && bin=$(postgres_bin_dir); then
    # Immediate: the data is thrown away next, so there is nothing to flush.
    as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 \
      || log "pg_ctl stop failed for $pg_dir"
  fi
}

# pause_postgres DIR: stops the cluster in DIR/postgres the way a crash would, keeping its data:
# an immediate shutdown ends every session at once and leaves recovery to the next start.
pause_postgres() {
  local pg_dir=$1/postgres bin
  bin=$(postgres_bin_dir) || { log "PostgreSQL is not installed"; return 1; }
  [ -f "$pg_dir/data/postmaster.pid" ] || { log "no PostgreSQL runs in $pg_dir"; return 1; }
  as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -m immediate -w -t 30 stop >/dev/null
}

# resume_postgres DIR: starts the cluster in DIR/postgres again, on the port it had.
resume_postgres() {
  local pg_dir=$1/postgres bin started_ms
  bin=$(postgres_bin_dir) || { log "PostgreSQL is not installed"; return 1; }
  [ -f "$pg_dir/port" ] || { log "$pg_dir holds no cluster this script started"; return 1; }
  started_ms=$(now_ms)
  if ! pg_start "$bin" "$pg_dir" "$(cat "$pg_dir/port")"; then
    log "PostgreSQL did not start again in $pg_dir:"; tail -n 5 "$pg_dir/server.log" >&2 || true
    return 1
  fi
  log "PostgreSQL on 127.0.0.1:$(cat "$pg_dir/port") again, ready in $(( $(now_ms) - started_ms )) ms"
}

# check_ours DIR: fails unless this script made DIR.
check_ours() {
  if [ ! -f "$1/$MARKER" ]; then
    log "$1 was not made by this script; not touching it"
    return 1
  fi
}

stop_all() {
  local services_dir=$1
  check_ours "$services_dir" || return 1
  stop_postgres "$services_dir"
  rm -rf "$services_dir"
}

case "${1:-}" in
  start)
    services_dir=$(mktemp -d -t heapfleet-services.XXXXXX)
    touch "$services_dir/$MARKER"
    # Until every service is up, any failure or interruption takes the directory down again.
    trap 'stop_all "$services_dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    exports=$(start_postgres "$services_dir")
    trap - EXIT INT TERM
    echo "export HEAPFLEET_TEST_SERVICES_DIR='$services_dir'"
    echo "$exports"
    ;;
  stop)
    [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    stop_all "$2"
    ;;
  pause | resume)
    [ $# -eq 2 ] || { echo "usage: $0 $1 DIR" >&2; exit 2; }
    check_ours "$2"
    "${1}_postgres" "$2"
    ;;
  *)
    echo "usage: $0 start | stop DIR | pause DIR | resume DIR" >&2
    exit 2
    ;;
esac
