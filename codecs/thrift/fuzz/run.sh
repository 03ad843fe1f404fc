#!/usr/bin/env bash
# Runs the Thrift fuzz target for SECONDS (default 300), seeded with the recorded Python frames.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets libFuzzer's nightly flags
# build on the stable toolchain.
#   codecs/thrift/fuzz/run.sh [SECONDS]
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-300}"
cd "$crate"
mkdir -p fuzz/corpus/thrift_frame
python3 - <<'PY'
import json
m = json.load(open('fixtures/captures.json'))
for x in m['messages']:
    data = open('fixtures/' + x['file'], 'rb').read()
    frame = data[x['offset']:x['offset'] + x['length']]
    # The first byte picks transport, protocol and where to split the input into two reads.
    for mode in (0, 0x21, 0x12):
        name = x['file'].split('/')[-1]
        open(f"fuzz/corpus/thrift_frame/{name}.{x['index']}.{mode}", 'wb').write(bytes([mode]) + frame)
PY
RUSTC_BOOTSTRAP=1 cargo fuzz run thrift_frame fuzz/corpus/thrift_frame -- -max_total_time="$seconds" -max_len=100000 2>&1 \
  | tee /tmp/fuzz-thrift_frame.log | grep -E "^(Done|==|SUMMARY)|ERROR|panicked" || true
grep -E "^Done [0-9]+ runs" /tmp/fuzz-thrift_frame.log || { echo "fuzz: no clean finish, see /tmp/fuzz-thrift_frame.log"; exit 1; }
