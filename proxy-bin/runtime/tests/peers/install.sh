#!/usr/bin/env bash
# Idempotent installer for the runtime's own test peers, into the shared venv target/peers/venv
# (created by codecs/dubbo/fixtures/peers/install.sh when missing):
#   opentelemetry-proto (the OpenTelemetry protocol's official generated Python code, Apache-2.0)
#   and grpcio (Apache-2.0): tests/peers/otlp_receiver.py, the OTLP collector of the tracing tests.
# Quiet, and no pip at all, when everything is already installed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
VENV="$ROOT/target/peers/venv"
PY="${PYTHON:-python3}"

OTEL_PROTO_VERSION="1.45.2"
GRPCIO_VERSION="1.85.1"

if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
fi

have() {
    "$VENV/bin/python" - "$OTEL_PROTO_VERSION" "$GRPCIO_VERSION" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md
assert md.version("opentelemetry-proto") == sys.argv[1]
assert md.version("grpcio") == sys.argv[2]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc  # noqa: F401
PY
}

if ! have; then
    echo "install.sh: installing opentelemetry-proto==$OTEL_PROTO_VERSION grpcio==$GRPCIO_VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "opentelemetry-proto==$OTEL_PROTO_VERSION" "grpcio==$GRPCIO_VERSION"
    have
fi
