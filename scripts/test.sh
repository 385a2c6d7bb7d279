#!/usr/bin/env bash
# Runs heapfleet's whole test suite, the same way on a laptop and in CI:
#   1. makes sure the tools the tests use are installed (Ruby to write real dumps, heapy as an
#      independent oracle, PostgreSQL for the catalog), installing them with apt when running
#      as root on Debian;
#   2. starts a throwaway PostgreSQL cluster on a free loopback port (scripts/test-services.sh)
#      and points the tests at it with HEAPFLEET_TEST_POSTGRES_URL, and a throwaway Apache
#      Cassandra 5 node (scripts/cassandra.sh, the CQL server standing in for ScyllaDB) named in
#      HEAPFLEET_TEST_SCYLLA_URI, and a throwaway S3-compatible server (scripts/s3-server.sh,
#      s3s-fs) named in HEAPFLEET_TEST_S3_ENDPOINT, unless those are already set. The fault
#      tests (services/ingester/tests/faults.rs) start servers of their own through the same
#      scripts, to stop and restart them: a PostgreSQL cluster, an S3 server and a second
#      Cassandra node on free ports (never the shared one), with the tools installed in step 1;
#   3. runs every test of the workspace;
#   4. stops the servers and removes their directories on the way out, whether the tests
#      passed, failed or were interrupted.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p heapfleet-dump`).
# When a tool or server is missing the tests that need it skip with a note; set
# HEAPFLEET_REQUIRE_SERVICES=1 to make them fail instead (CI always does).
set -euo pipefail
cd "$(dirname "$0")/.."
# Tools installed with `cargo install` (reap) live in cargo's bin directory.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! scripts/install-test-deps.sh; then
  echo "test.sh: some test dependencies are missing; the tests that need them will skip" \
    "(or fail under HEAPFLEET_REQUIRE_SERVICES=1)" >&2
fi

services_dir=""
cassandra_pid=""
cassandra_work=""
s3_pid=""
s3_root=""
stop_services() {
  if [ -n "$services_dir" ]; then
    scripts/test-services.sh stop "$services_dir"
  fi
  if [ -n "$cassandra_pid" ]; then
    scripts/cassandra.sh stop "$cassandra_pid" "$cassandra_work"
  fi
  if [ -n "$s3_pid" ]; then
    scripts/s3-server.sh stop "$s3_pid" "$s3_root"
  fi
}
trap stop_services EXIT
# Exiting through a signal runs the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${HEAPFLEET_TEST_POSTGRES_URL:-}" ]; then
  echo "test.sh: using the PostgreSQL server in HEAPFLEET_TEST_POSTGRES_URL" >&2
elif exports=$(scripts/test-services.sh start); then
  eval "$exports"
  services_dir=$HEAPFLEET_TEST_SERVICES_DIR
else
  echo "test.sh: PostgreSQL did not start; the tests that need it will skip" \
    "(or fail under HEAPFLEET_REQUIRE_SERVICES=1)" >&2
fi

if [ -n "${HEAPFLEET_TEST_SCYLLA_URI:-}" ]; then
  echo "test.sh: using the CQL server in HEAPFLEET_TEST_SCYLLA_URI" >&2
elif exports=$(scripts/cassandra.sh start); then
  eval "$exports"
  cassandra_pid=$CASSANDRA_PID
  cassandra_work=$CASSANDRA_WORK
else
  echo "test.sh: Cassandra did not start; the tests that need it will skip" \
    "(or fail under HEAPFLEET_REQUIRE_SERVICES=1)" >&2
fi

if [ -n "${HEAPFLEET_TEST_S3_ENDPOINT:-}" ]; then
  echo "test.sh: using the S3 server in HEAPFLEET_TEST_S3_ENDPOINT" >&2
elif exports=$(scripts/s3-server.sh start); then
  eval "$exports"
  s3_pid=$S3_SERVER_PID
  s3_root=$S3_SERVER_ROOT
else
  echo "test.sh: the S3 server did not start; the tests that need it will skip" \
    "(or fail under HEAPFLEET_REQUIRE_SERVICES=1)" >&2
fi

# The whole workspace, unless the arguments pick packages (`--workspace` would override them).
scope=(--workspace)
for argument in "$@"; do
  case $argument in
    -p | -p* | --package | --package=*) scope=() ;;
  esac
done
cargo test "${scope[@]}" --locked "$@"
