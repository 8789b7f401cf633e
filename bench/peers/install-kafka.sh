#!/usr/bin/env bash
# Installs Apache Kafka (broker + perf tools) from Maven Central jars into
# ~/.cache/kmq/peers/kafka-<version>/libs. Idempotent: does nothing when the libs
# are there. KAFKA_VERSION overrides the pinned version.
set -euo pipefail
VERSION="${KAFKA_VERSION:-4.3.1}"
ROOT="${KMQ_PEERS_DIR:-$HOME/.cache/kmq/peers}"
DEST="$ROOT/kafka-$VERSION"
LIBS="$DEST/libs"

fail() { echo "install-kafka: $*" >&2; exit 1; }

if [[ -f "$DEST/.installed" ]]; then
  echo "install-kafka: Kafka $VERSION already in $LIBS ($(ls "$LIBS" | wc -l) jars)"
  exit 0
fi
command -v java >/dev/null || fail "java not found (Kafka $VERSION needs Java 17+)"
command -v mvn >/dev/null || fail "mvn not found (apt-get install maven)"

WORK="$DEST/resolve"
mkdir -p "$WORK" "$LIBS"
cat >"$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kmq.bench</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <!-- As in Kafka's own distribution: SLF4J 2 logging through Log4j 2 (a transitive dependency would pin SLF4J 1.7). -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.25.4</version></dependency>
  </dependencies>
</project>
POM
echo "install-kafka: resolving org.apache.kafka:kafka_2.13:$VERSION and kafka-tools with Maven into $LIBS"
if ! nice -n 10 mvn -q -B -Dstyle.color=never -f "$WORK/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$WORK/mvn.log" 2>&1; then
  tail -30 "$WORK/mvn.log" >&2
  rm -rf "$LIBS"
  fail "Maven could not resolve Kafka $VERSION (log: $WORK/mvn.log)"
fi
ls "$LIBS"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1 || fail "kafka_2.13-$VERSION.jar missing after resolve"
touch "$DEST/.installed"
echo "install-kafka: installed Kafka $VERSION, $(ls "$LIBS" | wc -l) jars in $LIBS"
