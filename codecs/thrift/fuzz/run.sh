#!/usr/bin/env bash
# Runs the Thrift fuzz target, seeded with the recorded Python frames and whole captures (each
# under auto-detection and under its own fixed transport and protocol), then minimises the corpus
# (`cargo fuzz cmin`). Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets
# libFuzzer's nightly flags build on the stable toolchain.
#   codecs/thrift/fuzz/run.sh [SECONDS | --runs N]
# Default: 300 seconds. One fuzzing process, on one core; on a shared machine run it as
# `nice -n 19 codecs/thrift/fuzz/run.sh`. The corpus (fuzz/corpus/thrift_frame) is
# committed as the last campaign left it, minimised; this script adds the seeds again before each
# run. Crash artifacts stay local (.gitignore).
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
limit="-max_total_time=300"
case "${1:-}" in
  --runs) limit="-runs=${2:?--runs needs a count}"; shift 2 ;;
  --runs=*) limit="-runs=${1#--runs=}"; shift ;;
  [0-9]*) limit="-max_total_time=$1"; shift ;;
esac
target=thrift_frame
corpus="fuzz/corpus/$target"
max_len=100000
cd "$crate"
mkdir -p "$corpus"
python3 - <<'PY'
import json
m = json.load(open('fixtures/captures.json'))
# The first byte picks the transport (bits 0-1: auto, framed, unframed, header), the protocol
# ((byte >> 2) % 3: auto, binary, compact), lax binary (bit 6) and where to split the input into
# two reads (byte >> 4). Adding 0x30 keeps transport and protocol and splits after 3 bytes.
transports = {'framed': 1, 'buffered': 2, 'unframed': 2, 'header': 3}
protocols = {'binary': 1 << 2, 'compact': 2 << 2}
def modes(transport, protocol):
    fixed = transports.get(transport, 0) | protocols.get(protocol, 0)
    return sorted({0, 0x21, 0x12, fixed, fixed | 0x30})
for x in m['messages']:
    data = open('fixtures/' + x['file'], 'rb').read()
    frame = data[x['offset']:x['offset'] + x['length']]
    name = x['file'].split('/')[-1]
    for mode in modes(x.get('transport'), x.get('protocol')):
        open(f"fuzz/corpus/thrift_frame/{name}.{x['index']}.{mode}", 'wb').write(bytes([mode]) + frame)
for x in {x['file'] for x in m['messages']}:
    # Whole connections: many messages in one input (file names say transport and protocol).
    data = open('fixtures/' + x, 'rb').read()
    name = x.split('/')[-1]
    transport, protocol = name.split('.')[0].split('-')[:2]
    for mode in modes(transport, protocol):
        open(f"fuzz/corpus/thrift_frame/{name}.all.{mode}", 'wb').write(bytes([mode]) + data)
PY
corpus_size() { echo "$(find "$1" -type f | wc -l) files, $(du -sb "$1" | cut -f1) bytes"; }
echo "fuzz $target: corpus before the run: $(corpus_size "$corpus")"
RUSTC_BOOTSTRAP=1 cargo fuzz run --jobs 1 "$target" "$corpus" -- "$limit" -max_len="$max_len" -timeout=30 \
  -print_final_stats=1 2>&1 \
  | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+\s+DONE|Done|==|SUMMARY)|ERROR|panicked" || true
grep -E "^Done [0-9]+ runs" "/tmp/fuzz-$target.log" || { echo "fuzz $target: no clean finish, see /tmp/fuzz-$target.log"; exit 1; }
echo "fuzz $target: corpus after the run: $(corpus_size "$corpus")"
RUSTC_BOOTSTRAP=1 cargo fuzz cmin "$target" "$corpus" -- -max_len="$max_len" -timeout=30 \
  >"/tmp/fuzz-$target.cmin.log" 2>&1 || { echo "fuzz $target: cmin failed, see /tmp/fuzz-$target.cmin.log"; exit 1; }
echo "fuzz $target: corpus after cmin: $(corpus_size "$corpus")"
