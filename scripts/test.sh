#!/usr/bin/env bash
# The whole test suite: the command README.md gives, and what .ci/run runs.
#   1. the licence allow-list over the dependency graph (deny.toml);
#   2. every crate's unit and integration tests, the conformance kit included;
#   3. the plugin template, copied outside the workspace, builds and passes its own tests.
# Test peers that later suites need (Python, Java and npm implementations) are installed here when
# missing, so that a fresh machine needs nothing done by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "test.sh: python3 is required (apt-get install python3)"; exit 1; }
python3 scripts/check-licenses.py
cargo test --workspace --locked
scripts/check-template-copy.sh
