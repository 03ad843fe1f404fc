#!/usr/bin/env bash
# Runs the Dubbo fuzz targets one after the other, seeded with the committed real-peer frames and
# whole captures, and the Hessian reference vectors (and the Hessian bodies of the peer frames),
# then minimises each corpus (`cargo fuzz cmin`). Needs cargo-fuzz (`cargo install cargo-fuzz`);
# libFuzzer needs nightly compiler flags, which RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
#   codecs/dubbo/fuzz/run.sh [SECONDS | --runs N] [TARGET...]
# Default: 300 seconds per target, both targets (hessian_skip dubbo_frame). One fuzzing process
# at a time, on one core; on a shared machine run it as `nice -n 19 codecs/dubbo/fuzz/run.sh`.
# The corpus (fuzz/corpus/<target>) is committed as the last campaign left it, minimised; this
# script adds the seeds again before each run. Crash artifacts (fuzz/artifacts) stay local.
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
limit="-max_total_time=300"
case "${1:-}" in
  --runs) limit="-runs=${2:?--runs needs a count}"; shift 2 ;;
  --runs=*) limit="-runs=${1#--runs=}"; shift ;;
  [0-9]*) limit="-max_total_time=$1"; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hessian_skip dubbo_frame)
max_len=100000
cd "$crate"
mkdir -p fuzz/corpus/hessian_skip fuzz/corpus/dubbo_frame
cp fixtures/hessian/java/*.bin fuzz/corpus/hessian_skip/
for f in fixtures/hessian/js/*.bin; do cp "$f" "fuzz/corpus/hessian_skip/js-$(basename "$f")"; done
python3 - <<'PY'
import json
m = json.load(open('fixtures/peers/captures.json'))
for x in m['messages']:
    data = open('fixtures/peers/' + x['file'], 'rb').read()
    frame = data[x['offset']:x['offset'] + x['length']]
    # The first byte tells the target where to split the input into two reads.
    open(f"fuzz/corpus/dubbo_frame/{x['file']}.{x['index']}", 'wb').write(bytes([len(frame) // 2 % 256]) + frame)
    # A Hessian 2 body (serialization 2) is a stream of Hessian values: a seed for the skipper.
    if x.get('serialization_id') == 2 and len(frame) > 16:
        open(f"fuzz/corpus/hessian_skip/peer-{x['file']}.{x['index']}", 'wb').write(frame[16:])
for name in m['files']:
    # Whole connections, split in the middle of the first frame: many frames in one input.
    data = open('fixtures/peers/' + name, 'rb').read()
    open(f"fuzz/corpus/dubbo_frame/{name}.all", 'wb').write(bytes([7]) + data)
PY
corpus_size() { echo "$(find "$1" -type f | wc -l) files, $(du -sb "$1" | cut -f1) bytes"; }
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  echo "fuzz $target: corpus before the run: $(corpus_size "$corpus")"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --jobs 1 "$target" "$corpus" -- "$limit" -max_len="$max_len" -timeout=30 \
    -print_final_stats=1 2>&1 \
    | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+\s+DONE|Done|==|SUMMARY)|ERROR|panicked" || true
  grep -E "^Done [0-9]+ runs" "/tmp/fuzz-$target.log" || { echo "fuzz $target: no clean finish, see /tmp/fuzz-$target.log"; exit 1; }
  echo "fuzz $target: corpus after the run: $(corpus_size "$corpus")"
  RUSTC_BOOTSTRAP=1 cargo fuzz cmin "$target" "$corpus" -- -max_len="$max_len" -timeout=30 \
    >"/tmp/fuzz-$target.cmin.log" 2>&1 || { echo "fuzz $target: cmin failed, see /tmp/fuzz-$target.cmin.log"; exit 1; }
  echo "fuzz $target: corpus after cmin: $(corpus_size "$corpus")"
done
