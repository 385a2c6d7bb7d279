#!/usr/bin/env bash
# A throwaway S3-compatible server for the tests: s3s-fs, which checks SigV4 signatures like S3
# and keeps objects as files (a bucket is a sub-directory of its root). No Docker: the binary
# is built from crates.io once, into a cache outside the repository (about 3 minutes on 2 cores).
#
#   eval "$(scripts/s3-server.sh start)"   # exports HEAPFLEET_TEST_S3_ENDPOINT, _BUCKET,
#                                          # _ACCESS_KEY, _SECRET_KEY, S3_SERVER_PID, S3_SERVER_ROOT
#   scripts/s3-server.sh stop "$S3_SERVER_PID" "$S3_SERVER_ROOT"
#   scripts/s3-server.sh restart PORT "$S3_SERVER_ROOT"   # after the server was killed: serves the
#                                          # same objects on the same port again; exports S3_SERVER_PID
#
# Listens on a free loopback port; ready in well under a second. Progress goes to stderr;
# stdout carries only the exports. If `start` fails it leaves nothing behind.
set -euo pipefail

# s3s-fs 0.14.1 is the newest release that builds on the workspace's rustc (1.95).
readonly S3S_FS_VERSION=0.14.1
readonly BUCKET=heapfleet-test
tools=${HEAPFLEET_TOOLS:-$HOME/.cache/heapfleet}/s3s-fs-$S3S_FS_VERSION

log() { echo "s3-server: $*" >&2; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a loopback port nothing listens on.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

install_s3s_fs() {
  if [ -x "$tools/bin/s3s-fs" ]; then return; fi
  command -v cargo >/dev/null || { log "cargo is not installed"; return 1; }
  log "building s3s-fs $S3S_FS_VERSION into $tools (once; about 3 minutes)"
  local started
  started=$(date +%s)
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --quiet \
    --root "$tools" >&2
  log "s3s-fs built in $(( $(date +%s) - started )) s"
}

# launch ROOT PORT: serves ROOT/data on PORT; once it listens prints its pid, else fails.
launch() {
  local root=$1 port=$2 pid started
  started=$(now_ms)
  # Throwaway credentials: the server holds test data only and listens on loopback.
  "$tools/bin/s3s-fs" --host 127.0.0.1 --port "$port" --access-key heapfleet \
    --secret-key heapfleet-test-secret "$root/data" >>"$root/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    if port_in_use "$port"; then
      log "s3s-fs $S3S_FS_VERSION on 127.0.0.1:$port: ready in $(( $(now_ms) - started )) ms"
      echo "$pid"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  log "s3s-fs did not start on port $port:"
  tail -n 5 "$root/server.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}

start() {
  install_s3s_fs
  local root port pid attempt
  root=$(mktemp -d -t heapfleet-s3.XXXXXX)
  mkdir "$root/data" "$root/data/$BUCKET"
  # Another process may take the port between the check and the start: try a few.
  for attempt in 1 2 3; do
    port=$(free_port) || { log "found no free loopback port"; break; }
    if pid=$(launch "$root" "$port"); then
      echo "export HEAPFLEET_TEST_S3_ENDPOINT=http://127.0.0.1:$port" \
        "HEAPFLEET_TEST_S3_BUCKET=$BUCKET HEAPFLEET_TEST_S3_ACCESS_KEY=heapfleet" \
        "HEAPFLEET_TEST_S3_SECRET_KEY=heapfleet-test-secret S3_SERVER_PID=$pid S3_SERVER_ROOT=$root"
      return 0
    fi
    log "attempt $attempt failed"
  done
  rm -rf "$root"
  return 1
}

restart() {
  local port=$1 root=$2 pid
  # Only ever serve a directory this script made.
  case $(basename "$root") in
    heapfleet-s3.*) [ -d "$root/data" ] || { log "$root holds no data directory"; return 1; } ;;
    *) log "$root was not made by this script; not touching it"; return 1 ;;
  esac
  install_s3s_fs
  pid=$(launch "$root" "$port") || return 1
  echo "export S3_SERVER_PID=$pid"
}

stop() {
  local pid=$1 root=$2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  # Only ever remove a directory this script made.
  case $(basename "$root") in
    heapfleet-s3.*) rm -rf "$root" ;;
    *) log "$root was not made by this script; not touching it" ;;
  esac
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:?pid}" "${3:?root dir}" ;;
  restart) restart "${2:?port}" "${3:?root dir}" ;;
  *) echo "usage: $0 start | stop PID ROOT_DIR | restart PORT ROOT_DIR" >&2; exit 2 ;;
esac
