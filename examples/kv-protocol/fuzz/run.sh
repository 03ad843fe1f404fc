#!/usr/bin/env bash
# Runs the kv template codec's fuzz target, seeded with the frames of the committed capture
# (captures/session.kv) and the whole capture, then minimises the corpus (`cargo fuzz cmin`).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer needs nightly compiler flags, which
# RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
#   examples/kv-protocol/fuzz/run.sh [SECONDS | --runs N]
# Default: 300 seconds. One fuzzing process, on one core; on a shared machine run it as
# `nice -n 19 examples/kv-protocol/fuzz/run.sh`. The corpus (fuzz/corpus/kv_frame) is committed as
# the last campaign left it, minimised; this script adds the seeds again before each run. Crash
# artifacts stay local (fuzz/.gitignore).
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
target=kv_frame
corpus="fuzz/corpus/$target"
# Frames in the capture are under 100 bytes; 4 KiB holds dozens of frames, large header blocks
# and the 256-byte maximum. Longer inputs only add loop-count features and cut the rate tenfold.
max_len=4096
cd "$crate"
mkdir -p "$corpus"
python3 - <<'PY'
data = open('captures/session.kv', 'rb').read()
# Byte 0 picks the maximum frame size (bit 0: 4 MiB or 256 bytes), byte 1 where to split the
# input into two reads. Frames are cut by their length field (bytes 4..8, after the 8-byte prefix).
at, i = 0, 0
while at + 8 <= len(data):
    end = at + 8 + int.from_bytes(data[at + 4:at + 8], 'big')
    frame = data[at:end]
    for pick in (0, 1):
        open(f"fuzz/corpus/kv_frame/session.kv.{i}.{pick}", 'wb').write(bytes([pick, len(frame) // 2 % 256]) + frame)
    at, i = end, i + 1
assert at == len(data), "captures/session.kv does not end on a frame boundary"
# The whole connection: many frames in one input.
open("fuzz/corpus/kv_frame/session.kv.all", 'wb').write(bytes([0, 7]) + data)
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
