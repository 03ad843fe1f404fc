#!/usr/bin/env bash
# Runs the Dubbo fuzz targets for SECONDS each (default 300), seeded with the committed real-peer
# frames and the Hessian reference vectors. Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer
# needs nightly compiler flags, which RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
#   codecs/dubbo/fuzz/run.sh [SECONDS]
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-300}"
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
PY
for target in hessian_skip dubbo_frame; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -max_len=100000 2>&1 \
    | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+\s+DONE|Done|==|SUMMARY)|ERROR|panicked" || true
  grep -E "^Done [0-9]+ runs" "/tmp/fuzz-$target.log" || { echo "fuzz $target: no clean finish, see /tmp/fuzz-$target.log"; exit 1; }
done
