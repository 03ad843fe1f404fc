#!/usr/bin/env bash
# Runs the framed codec's fuzz target for SECONDS (default 300), seeded with the frames captured
# from the real peers (pylibmc + memcached, sofa-rpc-node). Needs cargo-fuzz (`cargo install
# cargo-fuzz`); libFuzzer needs nightly compiler flags, which RUSTC_BOOTSTRAP=1 enables on the
# stable toolchain.
#   codecs/framed/fuzz/run.sh [SECONDS]
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-300}"
cd "$crate"
mkdir -p fuzz/corpus/framed_frame
python3 - <<'PY'
import json
m = json.load(open('fixtures/peers/captures.json'))
for i, x in enumerate(m['messages']):
    data = open('fixtures/peers/' + x['file'], 'rb').read()
    frame = data[x['offset']:x['offset'] + x['length']]
    # Byte 0 picks the configuration (0 memcached, 1 Bolt), byte 1 where to split the input.
    pick = 1 if x['file'].startswith('bolt') else 0
    open(f"fuzz/corpus/framed_frame/{x['file']}.{i}", 'wb').write(bytes([pick, len(frame) // 2 % 256]) + frame)
PY
RUSTC_BOOTSTRAP=1 cargo fuzz run framed_frame fuzz/corpus/framed_frame -- -max_total_time="$seconds" -max_len=200000 2>&1 \
  | tee /tmp/fuzz-framed_frame.log | grep -E "^(#[0-9]+\s+DONE|Done|==|SUMMARY)|ERROR|panicked" || true
grep -E "^Done [0-9]+ runs" /tmp/fuzz-framed_frame.log || { echo "fuzz framed_frame: no clean finish, see /tmp/fuzz-framed_frame.log"; exit 1; }
