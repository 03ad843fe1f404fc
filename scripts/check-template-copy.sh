#!/usr/bin/env bash
# Copies examples/kv-protocol outside the workspace, renames it as its README says (package, lib
# and binary names, dependency paths), and runs its tests there: the template must build alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
copy="$work/my-protocol"
cp -r "$root/examples/kv-protocol" "$copy"
# Build output and local fuzzing state are not part of the template.
rm -rf "$copy/target" "$copy/fuzz/target" "$copy/fuzz/corpus" "$copy/fuzz/artifacts"
# Step 2 of the README: the TEMPLATE lines of Cargo.toml.
sed -i \
  -e 's|^name = "metaprotocol-example-kv"|name = "my-protocol"|' \
  -e 's|^name = "kv_protocol"|name = "my_protocol"|' \
  -e 's|^name = "kv-metaproxy"|name = "my-metaproxy"|' \
  -e "s|path = \"../../|path = \"$root/|g" \
  "$copy/Cargo.toml"
# Step 3: the library's name in the sources.
grep -rl 'kv_protocol' "$copy/src" "$copy/tests" | xargs sed -i 's/kv_protocol/my_protocol/g'
# Same dependency versions as the workspace, and a target directory that CI caches with the rest.
cp "$root/Cargo.lock" "$copy/Cargo.lock"
export CARGO_TARGET_DIR="$root/target/template-copy"
echo "template copy: building and testing $copy"
(cd "$copy" && cargo test --quiet 2>&1)
inspected="$(cd "$copy" && cargo run --quiet -- inspect --protocol kv captures/session.kv)"
printf '%s\n' "$inspected" | head -n 1
echo "template copy: ok"
