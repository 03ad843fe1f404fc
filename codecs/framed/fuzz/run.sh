#!/usr/bin/env bash
# Runs the framed codec's fuzz target, seeded with the frames and whole connections captured from
# the real peers (pylibmc + memcached, sofa-rpc-node), then minimises the corpus (`cargo fuzz
# cmin`). Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer needs nightly compiler flags,
# which RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
#   codecs/framed/fuzz/run.sh [SECONDS | --runs N]
# Default: 300 seconds. One fuzzing process, on one core; on a shared machine run it as
# `nice -n 19 codecs/framed/fuzz/run.sh`. The corpus (fuzz/corpus/framed_frame) is committed as
# the last campaign left it, minimised; this script adds the seeds again before each run. Crash
# artifacts stay local (.gitignore).
# FUZZ_SANITIZER=none builds without AddressSanitizer (cargo fuzz's default is address): the codec
# is safe Rust (`forbid(unsafe_code)`), so what ASan adds is checking the dependencies' unsafe
# code, at a large cost per execution; panics, overflow checks and debug assertions stay on.
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
limit="-max_total_time=300"
case "${1:-}" in
  --runs) limit="-runs=${2:?--runs needs a count}"; shift 2 ;;
  --runs=*) limit="-runs=${1#--runs=}"; shift ;;
  [0-9]*) limit="-max_total_time=$1"; shift ;;
esac
target=framed_frame
corpus="fuzz/corpus/$target"
max_len=200000
cd "$crate"
mkdir -p "$corpus"
python3 - <<'PY'
import json
m = json.load(open('fixtures/peers/captures.json'))
for i, x in enumerate(m['messages']):
    data = open('fixtures/peers/' + x['file'], 'rb').read()
    frame = data[x['offset']:x['offset'] + x['length']]
    # Byte 0 picks the configuration (0 memcached, 1 Bolt), byte 1 where to split the input.
    pick = 1 if x['file'].startswith('bolt') else 0
    open(f"fuzz/corpus/framed_frame/{x['file']}.{i}", 'wb').write(bytes([pick, len(frame) // 2 % 256]) + frame)
for name in sorted({x['file'] for x in m['messages']}):
    # Whole connections: many frames in one input.
    data = open('fixtures/peers/' + name, 'rb').read()
    pick = 1 if name.startswith('bolt') else 0
    open(f"fuzz/corpus/framed_frame/{name}.all", 'wb').write(bytes([pick, 7]) + data)
PY
corpus_size() { echo "$(find "$1" -type f | wc -l) files, $(du -sb "$1" | cut -f1) bytes"; }
echo "fuzz $target: corpus before the run: $(corpus_size "$corpus")"
sanitizer=(-s "${FUZZ_SANITIZER:-address}")
RUSTC_BOOTSTRAP=1 cargo fuzz run "${sanitizer[@]}" --jobs 1 "$target" "$corpus" -- "$limit" -max_len="$max_len" -timeout=30 \
  -print_final_stats=1 2>&1 \
  | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+\s+DONE|Done|==|SUMMARY)|ERROR|panicked" || true
grep -E "^Done [0-9]+ runs" "/tmp/fuzz-$target.log" || { echo "fuzz $target: no clean finish, see /tmp/fuzz-$target.log"; exit 1; }
echo "fuzz $target: corpus after the run: $(corpus_size "$corpus")"
RUSTC_BOOTSTRAP=1 cargo fuzz cmin "${sanitizer[@]}" "$target" "$corpus" -- -max_len="$max_len" -timeout=30 \
  >"/tmp/fuzz-$target.cmin.log" 2>&1 || { echo "fuzz $target: cmin failed, see /tmp/fuzz-$target.cmin.log"; exit 1; }
echo "fuzz $target: corpus after cmin: $(corpus_size "$corpus")"
