#!/usr/bin/env bash
# Installs what heapfleet's tests need beyond Rust, if it is missing:
#   ruby       writes real heap dumps (tests/fixtures/ruby/make_dumps.rb) and runs the oracle
#   ruby-heapy heapy, the independent oracle for per-generation/per-site counts and diffs
#   postgresql the server the PostgreSQL catalog is tested against (scripts/test-services.sh
#              starts a throwaway cluster of it; Debian's package puts its tools, initdb and
#              pg_ctl, under /usr/lib/postgresql/<version>/bin, off PATH)
#   java, maven run Apache Cassandra 5 (scripts/cassandra.sh), the CQL server the ScyllaDB store
#              is tested against; Maven fetches its jars from Maven Central
#   redis-server, ruby-sidekiq
#              a real Redis and Sidekiq 6 for the end to end with the Ruby integration
#              (services/heapfleet/tests/sidekiq.rs starts its own throwaway redis-server)
#   reap 0.3.3 an independent implementation of dominators and retained sizes for Ruby dumps
#              (tests/it/reap_differential.rs); built from crates.io with cargo, about a
#              minute, into cargo's bin directory
# Uses apt (Debian/Ubuntu) and needs root for that; otherwise it says what to install and fails.
set -euo pipefail

# reap comes from crates.io, not apt: install it first, as any user.
if ! command -v reap >/dev/null 2>&1; then
  echo "installing reap 0.3.3 with cargo install" >&2
  cargo install reap --version 0.3.3 --locked --quiet
fi

postgres_installed() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || { command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; }
}

missing=()
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
command -v heapy >/dev/null 2>&1 || missing+=(ruby-heapy)
postgres_installed || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v sidekiq >/dev/null 2>&1 || missing+=(ruby-sidekiq)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install these packages, then run again: ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
