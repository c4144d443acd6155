#!/usr/bin/env bash
# Why: `make test` must fail when a committed generated file differs from what `make generate` makes; this compares without touching the work tree, so it runs the same on a fresh clone.
# The generated files and their generators (the same as `make generate`):
#   openapi.yaml                  the frontend's example print-openapi (`make openapi`)
#   deploy/local/nats-auth.conf   e2e/tests/authorization.rs, from Helm/nats-values.yaml (that test compares)
#   Helm/README.md's values table readme-generator-for-helm, from the ## @param comments of Helm/values.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
differs() { # differs COMMITTED GENERATED: prints the diff and counts a failure when they differ
  if ! diff -u --label "$1 (committed)" --label "$1 (generated)" "$1" "$2"; then
    echo "check-generated: $1 is out of date: run make generate and commit it" >&2
    failed=1
  fi
}

# Built with the whole workspace's features, as `make test-rust` builds it: `-p frontend` alone would
# resolve other features and build most dependencies a second time.
"$CARGO" build --quiet --workspace --examples
"${CARGO_TARGET_DIR:-target}/debug/examples/print-openapi" >"$tmp/openapi.yaml"
differs openapi.yaml "$tmp/openapi.yaml"

if ! "$CARGO" test --quiet --workspace --test authorization -- --exact \
     the_local_stack_uses_the_charts_users_and_permissions >"$tmp/nats-auth.log" 2>&1; then
  cat "$tmp/nats-auth.log" >&2
  echo "check-generated: deploy/local/nats-auth.conf is out of date: run make generate and commit it" >&2
  failed=1
fi

./scripts/install-k8s-tools.sh npm
cp Helm/README.md "$tmp/README.md"
.tools/npm/node_modules/.bin/readme-generator -v Helm/values.yaml -r "$tmp/README.md" >"$tmp/rg.log" 2>&1 ||
  { cat "$tmp/rg.log" >&2; failed=1; }
differs Helm/README.md "$tmp/README.md"

[ "$failed" -eq 0 ] && echo "check-generated: openapi.yaml, deploy/local/nats-auth.conf and Helm/README.md's values table are current"
exit "$failed"
