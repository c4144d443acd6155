#!/usr/bin/env bash
# Why: issue 15 §5: the spec is linted by Redocly (pinned in scripts/npm, rules in redocly.yaml) in make test, so a spec that lies or is incomplete fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-k8s-tools.sh npm
# No telemetry, no update check: the lint runs offline and says only what it found.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! .tools/npm/node_modules/.bin/redocly lint --config redocly.yaml --format stylish openapi.yaml >"$out" 2>&1; then
  cat "$out" >&2
  echo "lint-openapi: redocly found problems in openapi.yaml (rules: redocly.yaml)" >&2
  exit 1
fi
echo "lint-openapi: openapi.yaml passes redocly lint (recommended-strict, redocly.yaml)"
