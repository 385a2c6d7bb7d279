#!/usr/bin/env bash
# A throwaway single-node Apache Cassandra 5.0 for the tests (it speaks the CQL that ScyllaDB
# speaks; the project keeps one schema valid on both). No Docker and no tarball: the server jars
# come from Maven Central through Maven, once, into a cache outside the repository.
#
#   eval "$(scripts/cassandra.sh start)"   # exports HEAPFLEET_TEST_SCYLLA_URI, CASSANDRA_PID, CASSANDRA_WORK
#   scripts/cassandra.sh stop "$CASSANDRA_PID" "$CASSANDRA_WORK"
#   scripts/cassandra.sh restart "$CASSANDRA_WORK"   # after the node died or was killed: starts it
#                                                    # again on its data and ports; exports CASSANDRA_PID
#
# Needs Java 17 and Maven. Listens on 127.0.0.1:9042 (CQL), 7000 (inter-node) and 7199 (local
# JMX) unless CASSANDRA_CQL_PORT, CASSANDRA_STORAGE_PORT and CASSANDRA_JMX_PORT choose others
# (a second node beside the first, e.g. one a fault test kills and restarts); about 15-40 s to
# start and 1.5 GB of memory. The node keeps its system tables out of the commit log, which
# starts it faster but loses the schema when it is killed: CASSANDRA_CRASH_SAFE=1 turns that off
# for a node that is to be killed and restarted. Progress goes to stderr; stdout carries only
# the exports.
set -euo pipefail
here=$(cd "$(dirname "$0")/cassandra" && pwd)
version=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$here/pom.xml")
cache=${HEAPFLEET_TOOLS:-$HOME/.cache/heapfleet}/cassandra-$version

fetch_jars() {
  if [ -f "$cache/.complete" ]; then return; fi
  echo "cassandra: fetching Apache Cassandra $version jars from Maven Central into $cache" >&2
  mkdir -p "$cache"
  mvn -B -q -f "$here/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$cache/lib" -DincludeScope=runtime >&2
  touch "$cache/.complete"
}

# Succeeds when WORK holds a node this script started (its ports file), so `restart` never runs
# on anything else.
is_node_dir() {
  case $(basename "$1") in
    heapfleet-cassandra.*) [ -f "$1/ports" ] ;;
    *) return 1 ;;
  esac
}

# launch WORK: runs the node on WORK's data with the settings in WORK/ports, waits until it takes CQL
# connections and prints the exports; on failure kills it and fails (WORK stays for the caller).
launch() {
  local work=$1 config started jamm pid cql_port storage_port jmx_port crash_safe unsafe_system
  # shellcheck source=/dev/null
  . "$work/ports"
  config=$here/cassandra.yaml
  if [ "$cql_port" != 9042 ] || [ "$storage_port" != 7000 ]; then
    # The node's own seed must be itself on its own storage port: "127.0.0.1" alone would mean
    # port 7000, another node, whose cluster this one would then try to join. Its own cluster
    # name makes the other node refuse it even so.
    config=$work/cassandra.yaml
    sed -e "s/^cluster_name: .*/cluster_name: 'heapfleet-test-$cql_port'/" \
      -e "s/^storage_port: .*/storage_port: $storage_port/" \
      -e "s/^native_transport_port: .*/native_transport_port: $cql_port/" \
      -e "s/- seeds: .*/- seeds: \"127.0.0.1:$storage_port\"/" \
      "$here/cassandra.yaml" >"$config"
  fi
  unsafe_system=-Dcassandra.unsafesystem=true
  if [ "$crash_safe" = 1 ]; then unsafe_system=-Dcassandra.unsafesystem=false; fi
  jamm=$(ls "$cache"/lib/jamm-*.jar | head -1)
  started=$(date +%s)
  # The JVM flags Cassandra 5.0 needs on Java 17 (its conf/jvm17-server.options), a 1 GB heap,
  # and settings that make a single test node start fast.
  java -Xms1g -Xmx1g -Xss256k -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 \
    -XX:G1HeapRegionSize=16m -XX:MaxGCPauseMillis=300 -XX:+PerfDisableSharedMem \
    -ea -da:net.openhft... -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
    -Dio.netty.tryReflectionSetAccessible=true \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
    --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
    --add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED \
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
    --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$config" -Dlogback.configurationFile="file://$here/logback.xml" \
    -Dcassandra.storagedir="$work/data" -Dcassandra.logdir="$work/logs" -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 "$unsafe_system" \
    -Dcassandra.jmx.local.port="$jmx_port" -Dcom.sun.management.jmxremote.authenticate=false \
    -cp "$cache/lib/*" org.apache.cassandra.service.CassandraDaemon >>"$work/logs/stdout.log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$cql_port") 2>/dev/null; then
      echo "cassandra: ready on 127.0.0.1:$cql_port after $(( $(date +%s) - started )) s" >&2
      echo "export HEAPFLEET_TEST_SCYLLA_URI=127.0.0.1:$cql_port CASSANDRA_PID=$pid CASSANDRA_WORK=$work"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "cassandra: failed to start; last log lines:" >&2
  tail -n 20 "$work/logs/stdout.log" >&2 || true
  kill -9 "$pid" 2>/dev/null || true
  return 1
}

start() {
  command -v java >/dev/null || { echo "cassandra: java is not installed" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "cassandra: mvn is not installed" >&2; exit 1; }
  fetch_jars
  local work
  work=$(mktemp -d -t heapfleet-cassandra.XXXXXX)
  mkdir -p "$work/data" "$work/logs"
  printf 'cql_port=%d\nstorage_port=%d\njmx_port=%d\ncrash_safe=%d\n' \
    "${CASSANDRA_CQL_PORT:-9042}" "${CASSANDRA_STORAGE_PORT:-7000}" "${CASSANDRA_JMX_PORT:-7199}" \
    "${CASSANDRA_CRASH_SAFE:-0}" >"$work/ports"
  if ! launch "$work"; then
    rm -rf "$work"
    exit 1
  fi
}

restart() {
  local work=$1
  is_node_dir "$work" || { echo "cassandra: $work is not a node this script started" >&2; exit 1; }
  launch "$work" || exit 1
}

stop() {
  local pid=$1 work=$2
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:?pid}" "${3:?work dir}" ;;
  restart) restart "${2:?work dir}" ;;
  *) echo "usage: $0 start | stop PID WORK_DIR | restart WORK_DIR" >&2; exit 2 ;;
esac
