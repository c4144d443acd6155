#!/usr/bin/env bash
# Why: no chart tool enforces a version bump per change; a chart change without one would ship under an old version.
# Fails when files under Helm/ changed between a base commit and HEAD but Helm/Chart.yaml's `version`
# did not increase (semver). Usage: scripts/check-chart-version.sh [BASE]
#   BASE defaults to `git merge-base HEAD origin/main` when origin/main exists, else HEAD~1.
# Exits 0 when Helm/ is unchanged, when there is no base (first commit), or when the chart is new.
# The rule (Helm/README.md, "Versioning"): bump `version` on any chart change; patch for fixes, minor
# for new values/features, major for breaking values changes; bump `appVersion` when the image changes.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART_DIR=Helm
CHART_FILE=$CHART_DIR/Chart.yaml

base=${1:-}
if [ -z "$base" ]; then
  if git rev-parse --verify --quiet origin/main >/dev/null; then
    base=$(git merge-base HEAD origin/main)
  elif git rev-parse --verify --quiet HEAD~1 >/dev/null; then
    base=HEAD~1
  else
    echo "check-chart-version: no base commit (first commit): nothing to compare"
    exit 0
  fi
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
  echo "check-chart-version: base '$base' is not a commit" >&2
  exit 2
fi

if git diff --quiet "$base" HEAD -- "$CHART_DIR"; then
  echo "check-chart-version: $CHART_DIR/ unchanged since $(git rev-parse --short "$base")"
  exit 0
fi

# The top-level `version:` of a Chart.yaml given on stdin.
chart_version() { sed -n -E 's/^version:[[:space:]]*["'\'']?([^"'\''[:space:]]+)["'\'']?[[:space:]]*(#.*)?$/\1/p' | head -n 1; }

new=$(git show "HEAD:$CHART_FILE" 2>/dev/null | chart_version || true)
if ! old_text=$(git show "$base:$CHART_FILE" 2>/dev/null); then
  echo "check-chart-version: $CHART_FILE is new since $(git rev-parse --short "$base") (version $new): ok"
  exit 0
fi
old=$(printf '%s\n' "$old_text" | chart_version)

# semver_gt A B: true when A > B (major.minor.patch numerically; a pre-release sorts before its release).
semver_gt() {
  python3 - "$1" "$2" <<'EOF'
import re, sys
def key(v):
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?", v)
    if not m:
        sys.exit(f"check-chart-version: '{v}' is not a semver version")
    pre = m.group(4)
    # a release (no pre-release) is above any of its pre-releases; pre-release fields compare
    # numerically when numeric, else as text, numbers first (semver 2.0.0, rule 11)
    pre_key = (1,) if pre is None else (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")])
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre_key)
sys.exit(0 if key(sys.argv[1]) > key(sys.argv[2]) else 1)
EOF
}

if [ -z "$new" ]; then
  echo "check-chart-version: no version in $CHART_FILE at HEAD" >&2
  exit 1
fi
if semver_gt "$new" "$old"; then
  echo "check-chart-version: $CHART_DIR/ changed and version went $old -> $new: ok"
  exit 0
fi
cat >&2 <<EOF
check-chart-version: files under $CHART_DIR/ changed since $(git rev-parse --short "$base"), but $CHART_FILE
  version did not increase ($old at the base, $new at HEAD). Bump it following semver (see $CHART_DIR/README.md, "Versioning"):
    patch (x.y.Z) for a fix that changes no value,
    minor (x.Y.0) for a new value or feature that keeps existing values files working,
    major (X.0.0) for a breaking values change (a key renamed or removed, a changed meaning or selector);
  and bump appVersion when the image changes.
Changed files:
$(git diff --name-only "$base" HEAD -- "$CHART_DIR" | sed 's/^/    /')
EOF
exit 1
