#!/usr/bin/env bash
# Side-by-side throughput and latency, in one run: direct to the echo upstream, through HAProxy in
# TCP mode (one thread), and through metaproxy with a batch-job route (one worker), alternated for
# ROUNDS rounds; then metaproxy's memory with 10,000 idle downstream connections and its upstream
# connections in use under load.
#
#   benches/compare.sh [--protocol dubbo|thrift] [--duration 10s] [--rounds 2] [-c 8] [-m 16]
#
# Needs haproxy (Debian package; installed here when missing) and taskset. The proxies run pinned
# to CPU 0; the load generator and the echo upstream share CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
# 10,000 idle connections need descriptors in the proxy and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
protocol=dubbo duration=10s rounds=2 conns=8 inflight=16 payload=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -m) inflight=$2; shift 2 ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
if ! command -v haproxy >/dev/null; then
  echo "installing haproxy (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
fi
cargo build --release -q -p metaproxy -p metaprotocol-benches --bins
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo_port=31001 haproxy_port=31002 proxy_port=31003 admin_port=31004
taskset -c 1 $bin/echo-upstream --listen 127.0.0.1:$echo_port -p "$protocol" --payload "$payload" >/dev/null &
pids+=($!)

cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 1s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend be
backend be
  server echo 127.0.0.1:$echo_port
CFG
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
pids+=($!)

cat >"$work/metaproxy.yaml" <<CFG
workers: 1
admin: { address: 127.0.0.1:$admin_port }
access_log: { enabled: false }
listeners:
  - name: in
    address: 127.0.0.1:$proxy_port
    protocol: $protocol
    routes:
      - name: batchjob
        match: [{ key: batchjob, exact: "true" }]
        route: { cluster: echo }
      - name: default
        route: { cluster: echo }
clusters:
  - name: echo
    connections_per_endpoint: 2
    endpoints: [{ address: 127.0.0.1:$echo_port }]
CFG
taskset -c 0 $bin/metaproxy run -c "$work/metaproxy.yaml" 2>"$work/metaproxy.log" &
proxy_pid=$!
pids+=($proxy_pid)
sleep 1

run() { taskset -c 1 $bin/loadgen -t "127.0.0.1:$1" -p "$protocol" -c "$conns" -m "$inflight" -d "$duration" --payload "$payload" --json; }
declare -A tput p99
for name in direct haproxy metaproxy; do tput[$name]=""; p99[$name]=""; done
for r in $(seq 1 "$rounds"); do
  for name in direct haproxy metaproxy; do
    case $name in direct) port=$echo_port ;; haproxy) port=$haproxy_port ;; metaproxy) port=$proxy_port ;; esac
    line=$(run $port)
    echo "round $r $name: $line" >&2
    tput[$name]+="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["throughput_rps"])' "$line") "
    p99[$name]+="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p99_us"])' "$line") "
  done
done
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' $1; }
echo
echo "$protocol, $conns connections x $inflight in flight, ${payload}-byte payloads, $duration x $rounds rounds (medians)"
printf "%-10s %14s %10s\n" target "req/s" "p99 (us)"
for name in direct haproxy metaproxy; do
  printf "%-10s %14.0f %10.0f\n" $name "$(median "${tput[$name]}")" "$(median "${p99[$name]}")"
done
python3 - "$(median "${tput[direct]}")" "$(median "${tput[haproxy]}")" "$(median "${tput[metaproxy]}")" "$(median "${p99[haproxy]}")" "$(median "${p99[metaproxy]}")" <<'PY'
import sys
d, h, m, hp99, mp99 = map(float, sys.argv[1:])
print(f"metaproxy/haproxy throughput {m/h:.2f}x, metaproxy/direct {m/d:.2f}x, p99 metaproxy/haproxy {mp99/hp99:.2f}x")
PY

# Upstream connections in use, read from the admin endpoint while load runs.
( sleep 2; exec 3<>/dev/tcp/127.0.0.1/$admin_port; printf 'GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n' >&3; cat <&3 >"$work/metrics.txt" ) &
taskset -c 1 $bin/loadgen -t 127.0.0.1:$proxy_port -p "$protocol" -c "$conns" -m "$inflight" -d 4s --payload "$payload" >/dev/null || true
wait $! 2>/dev/null || true
echo "upstream connections in use under load: $(grep '^metaproxy_upstream_connections' "$work/metrics.txt" | awk '{print $2}')"

# Memory with 10,000 idle downstream connections.
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$proxy_pid/status)
taskset -c 1 $bin/loadgen -t 127.0.0.1:$proxy_port --idle 10000 -d 6s >"$work/idle.txt" &
idle=$!
for _ in $(seq 1 50); do grep -q IDLE "$work/idle.txt" 2>/dev/null && break; sleep 0.2; done
sleep 1
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$proxy_pid/status)
wait $idle || true
echo "metaproxy RSS: ${rss_before} KiB before, ${rss_idle} KiB with 10,000 idle connections ($(( (rss_idle - rss_before) * 1024 / 10000 )) bytes per connection)"
