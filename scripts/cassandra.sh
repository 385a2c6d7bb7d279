#!/usr/bin/env bash
# A throwaway single-node Apache Cassandra 5.0 for the tests (it speaks the CQL that ScyllaDB
# speaks; the project keeps one schema valid on both). No Docker and no tarball: the server jars
# come from Maven Central through Maven, once, into a cache outside the repository.
#
#   eval "$(scripts/cassandra.sh start)"   # exports HEAPFLEET_TEST_SCYLLA_URI, CASSANDRA_PID, CASSANDRA_WORK
#   scripts/cassandra.sh stop "$CASSANDRA_PID" "$CASSANDRA_WORK"
#
# Needs Java 17 and Maven. Listens on 127.0.0.1:9042 (CQL) and 7000; about 15-40 s to start and
# 1.5 GB of memory. Progress goes to stderr; stdout carries only the exports.
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

start() {
  command -v java >/dev/null || { echo "cassandra: java is not installed" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "cassandra: mvn is not installed" >&2; exit 1; }
  fetch_jars
  local work started jamm pid
  work=$(mktemp -d -t heapfleet-cassandra.XXXXXX)
  mkdir -p "$work/data" "$work/logs"
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
    -Dcassandra.config="file://$here/cassandra.yaml" -Dlogback.configurationFile="file://$here/logback.xml" \
    -Dcassandra.storagedir="$work/data" -Dcassandra.logdir="$work/logs" -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 -Dcassandra.unsafesystem=true \
    -Dcassandra.jmx.local.port=7199 -Dcom.sun.management.jmxremote.authenticate=false \
    -cp "$cache/lib/*" org.apache.cassandra.service.CassandraDaemon >"$work/logs/stdout.log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do
    if (exec 3<>/dev/tcp/127.0.0.1/9042) 2>/dev/null; then
      echo "cassandra: ready on 127.0.0.1:9042 after $(( $(date +%s) - started )) s" >&2
      echo "export HEAPFLEET_TEST_SCYLLA_URI=127.0.0.1:9042 CASSANDRA_PID=$pid CASSANDRA_WORK=$work"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "cassandra: failed to start; last log lines:" >&2
  tail -n 20 "$work/logs/stdout.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  rm -rf "$work"
  exit 1
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
  *) echo "usage: $0 start | stop PID WORK_DIR" >&2; exit 2 ;;
esac
