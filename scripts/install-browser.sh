#!/usr/bin/env bash
# Why: the live page's test drives a real browser; Debian's chromium and the locked playwright-core come from the registries, the same on a laptop and on a bare CI machine.
# Installs (idempotent):
#   chromium            Debian's package (its security updates are Debian's to pin) -> /usr/bin/chromium
#   playwright-core     as locked in scripts/browser/ (package.json + package-lock.json) -> .tools/browser
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "install-browser: $*" >&2; }

if ! command -v chromium >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { log "chromium is missing: run 'sudo apt-get install --no-install-recommends chromium' once"; exit 1; }
  log "installing Debian's chromium"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

BROWSER_TOOLS=.tools/browser
if ! cmp -s scripts/browser/package-lock.json "$BROWSER_TOOLS/package-lock.json" ||
  [ ! -d "$BROWSER_TOOLS/node_modules/playwright-core" ]; then
  command -v npm >/dev/null || { log "npm is required (apt-get install -y npm)"; exit 1; }
  log "installing playwright-core from scripts/browser into $BROWSER_TOOLS"
  rm -rf "$BROWSER_TOOLS"
  mkdir -p "$BROWSER_TOOLS"
  cp scripts/browser/package.json scripts/browser/package-lock.json "$BROWSER_TOOLS/"
  (cd "$BROWSER_TOOLS" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
fi
chromium --version >&2
