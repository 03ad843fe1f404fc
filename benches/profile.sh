#!/usr/bin/env bash
# Profiles metaproxy under load, as BENCHMARKS.md reports it: a frame-pointer build (in
# target/frame-pointers), metaproxy with one worker pinned to CPU 0, the echo upstream and the load
# generator on CPU 1 (8 connections x 16 in flight, 1 KiB payloads), and `perf record` of the proxy
# for 5 s. Prints the load generator's result and the top of the profile; the data stays in
# target/profile-<protocol>-<log>.perf for `perf report`.
#
#   benches/profile.sh [--protocol dubbo|thrift] [--access-log on|off] [--tracing RATIO]
#
# --tracing RATIO turns tracing on at that sample ratio, exporting over OTLP/gRPC to the test
# suite's receiver (discarding what it gets) on CPU 1; the exporter thread runs on CPU 0 with the
# worker, so the profile holds all the tracing work.
#
# Needs perf (Debian `linux-perf`; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
protocol=dubbo log=off tracing=
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --access-log) log=$2; shift 2 ;;
    --tracing) tracing=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if ! command -v perf >/dev/null; then
  echo "installing perf (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
fi
fp=target/frame-pointers
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=$fp cargo build --release -q -p metaproxy
cargo build --release -q -p metaprotocol-benches --bins
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo_port=33501 proxy_port=33503 collector_port=33505
if [ "$log" = on ]; then access="access_log: { enabled: true, path: $work/access.log }"; else access="access_log: { enabled: false }"; fi
# shellcheck source=benches/metaproxy-config.sh
. benches/metaproxy-config.sh
listener_extra="" suffix=$log
if [ -n "$tracing" ]; then
  proxy-bin/runtime/tests/peers/install.sh >/dev/null
  taskset -c 1 target/peers/venv/bin/python proxy-bin/runtime/tests/peers/otlp_receiver.py --discard \
    --port $collector_port --out "$work/collector.jsonl" >"$work/collector.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$collector_port") 2>/dev/null && break; sleep 0.1; done
  listener_extra="    tracing: { endpoint: \"http://127.0.0.1:$collector_port\", protocol: grpc, sample_ratio: $tracing, service_name: metaproxy }"
  suffix="$log-trace$tracing"
fi
metaproxy_yaml "$protocol" $proxy_port $echo_port "$access" "$listener_extra" >"$work/metaproxy.yaml"
taskset -c 1 target/release/echo-upstream --listen 127.0.0.1:$echo_port -p "$protocol" --payload 1024 >/dev/null &
pids+=($!)
taskset -c 0 $fp/release/metaproxy run -c "$work/metaproxy.yaml" 2>"$work/metaproxy.log" &
proxy=$!
pids+=($proxy)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break; sleep 0.1; done
taskset -c 1 target/release/loadgen -t 127.0.0.1:$proxy_port -p "$protocol" -c 8 -m 16 -d 8s --warmup 1s --payload 1024 >"$work/load.txt" 2>&1 &
load=$!
sleep 2
out="target/profile-$protocol-$suffix.perf"
perf record -F 2999 --call-graph fp -p "$proxy" -o "$out" -- sleep 5 >/dev/null 2>&1
wait $load
tail -n 1 "$work/load.txt"
perf report -i "$out" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 5
perf report -i "$out" --children --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 40
echo "profile: $out"
