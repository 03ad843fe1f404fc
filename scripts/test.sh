#!/usr/bin/env bash
# The whole test suite: the command README.md gives, and what .ci/run runs.
#   1. the test peers, installed when missing: the PyPI Dubbo clients and provider (python3-dubbo,
#      dubbo-py) and Apache Thrift's Python library into target/peers/venv, with Debian's
#      thrift-compiler generating the Python code for codecs/thrift/fixtures/demo.thrift; and the
#      OTLP receiver's opentelemetry-proto and grpcio (proxy-bin/runtime/tests/peers/install.sh);
#      Debian's ZooKeeper server (scripts/install-zookeeper.sh) for the service-discovery tests;
#   2. the licence allow-list over the dependency graph (deny.toml);
#   3. every crate's unit and integration tests, the conformance kit and real-peer tests included;
#   4. the plugin template, copied outside the workspace, builds and passes its own tests.
# The Hessian reference vectors (Caucho's Java Hessian, hessian.js) are committed; their generator,
# codecs/dubbo/fixtures/hessian/generate.sh, installs those peers itself when run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "test.sh: python3 is required (apt-get install python3)"; exit 1; }
codecs/dubbo/fixtures/peers/install.sh
codecs/thrift/fixtures/install.sh
codecs/framed/fixtures/install.sh
scripts/install-zookeeper.sh
proxy-bin/runtime/tests/peers/install.sh
python3 scripts/check-licenses.py
cargo test --workspace --locked
scripts/check-template-copy.sh
