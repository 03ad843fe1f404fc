#!/usr/bin/env bash
# Installs Debian's ZooKeeper server (apt package `zookeeper`, 3.8 on bookworm, Apache-2.0) for
# proxy-bin/runtime/tests/zookeeper_e2e.rs, which starts its own server on loopback with a
# temporary data directory (`java -cp /usr/share/java/zookeeper.jar ... ZooKeeperServerMain`).
# The package brings a Java runtime. Idempotent, and quiet when everything is already present.
set -euo pipefail

JAR=/usr/share/java/zookeeper.jar

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
fi

if [ -f "$JAR" ] && command -v java >/dev/null 2>&1; then
  exit 0
fi
echo "install-zookeeper.sh: installing zookeeper (apt)" >&2
# Try without refreshing the index first; refresh once only when that fails.
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends zookeeper >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
fi
[ -f "$JAR" ] || { echo "install-zookeeper.sh: $JAR missing after installing zookeeper" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "install-zookeeper.sh: no java after installing zookeeper" >&2; exit 1; }
