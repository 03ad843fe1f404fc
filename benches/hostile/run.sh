#!/usr/bin/env bash
# The overload and memory experiments of BENCHMARKS.md ("Hostile clients and overload"), on
# loopback with the release binaries:
#   1. overload: loadgen with 2,000 connections x 64 in flight through metaproxy (one worker) to
#      echo-upstream answering after 2 ms; prints the load generator's line and the proxy's
#      over-limit and timeout counters;
#   2. memory: partial_frames.py against metaproxy (two workers, default budgets).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p metaproxy -p metaprotocol-benches --bins
B="${CARGO_TARGET_DIR:-target}/release"
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
ulimit -n 20000
cat >"$T/p.yaml" <<CFG
workers: ${WORKERS:-1}
admin: { address: 127.0.0.1:19901 }
listeners:
  - name: in
    address: 127.0.0.1:19000
    protocol: dubbo
    routes: [{ name: all, route: { cluster: echo } }]
clusters:
  - { name: echo, connections_per_endpoint: 2, endpoints: [{ address: 127.0.0.1:19001 }] }
access_log: { enabled: false }
CFG
$B/echo-upstream --listen 127.0.0.1:19001 --delay 2ms --payload 64 >/dev/null &
$B/metaproxy run -c "$T/p.yaml" 2>/dev/null &
sleep 1
echo "== overload: 2000 connections x 64 in flight, upstream 2 ms"
$B/loadgen -t 127.0.0.1:19000 -c 2000 -m 64 -d 10s --payload 64 | tail -1 || true
curl -s 127.0.0.1:19901/metrics | grep -E 'local_replies_total.*kind="(over_limit|timeout)"|^metaproxy_upstream_rq_(total|pending_overflow)' || true
kill %2; sleep 0.5
sed -i 's/^workers: .*/workers: 2/' "$T/p.yaml"
$B/metaproxy run -c "$T/p.yaml" 2>/dev/null &
sleep 1
echo "== memory: 250 connections holding partial 8 MiB frames"
python3 benches/hostile/partial_frames.py 19000 "$(pgrep -n -f "metaproxy run -c $T/p.yaml")"
curl -s 127.0.0.1:19901/metrics | grep -E '^metaproxy_downstream_cx_overload' || true
