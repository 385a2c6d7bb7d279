#!/usr/bin/env bash
# Runs heapfleet's whole test suite, the same way on a laptop and in CI:
#   1. makes sure the tools the tests use are installed (Ruby to write real dumps, heapy as an
#      independent oracle), installing them with apt when running as root on Debian;
#   2. runs every test of the workspace.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p heapfleet-dump`).
# Set HEAPFLEET_REQUIRE_SERVICES=1 to make a missing tool fail the tests instead of skipping
# them (CI always does).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --workspace --locked "$@"
