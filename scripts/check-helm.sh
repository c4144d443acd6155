#!/usr/bin/env bash
# Why: one command for every check of the chart, in the order a failure is easiest to read; make test-helm runs it.
# Checks the Helm chart in Helm/ (`make test-helm`); exits non-zero on any problem. Offline, ~15 s.
# Needs the tools of scripts/install-k8s-tools.sh (.tools/bin/helm, .tools/kv-current, .tools/kv-1.31,
# .tools/checkov, .tools/npm). Steps:
#   1. helm lint --strict: default values, values-production.yaml (after the release step pins a test
#      digest), each also with --kube-version 1.24.17
#   2. Helm/tests/bad-values.yaml (string replica count, unknown key) is REJECTED by values.schema.json
#   3. helm template (namespace btc): defaults, production and tests/alternative-values.yaml, for the
#      current version and 1.24.17; production as in a cluster with cert-manager and the Prometheus operator
#      (--api-versions cert-manager.io/v1, monitoring.coreos.com/v1: the chart renders those objects only
#      where their API exists)
#   4. kubernetes-validate --strict: the 1.24 renders against 1.24 (kubernetes-validate 1.31.0) and the
#      others against 1.33; any ERROR or WARN fails, except "no schema" for the CRD allowlist
#      (ServiceMonitor, PrometheusRule, cert-manager's Certificate and Issuer), which are checked
#      against their CRDs' schemas instead (Helm/tests/check-crds.cjs) and the rules with promtool.
#      Known-bad objects must fail the validators (so a broken validator cannot pass everything).
#   5. checkov --framework kubernetes on defaults and production: its failures exactly the entries of
#      Helm/checkov-exceptions.yaml (none stale), passed > 0
#   6. the unit tests over the rendered objects (Helm/tests/test_*.py)
#   7. the server settings and users of Helm/nats-values.yaml load in nats-server (`-t`)
set -uo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools
HELM=$TOOLS/bin/helm
PY=$TOOLS/kv-current/bin/python
KV_OLD=$TOOLS/kv-1.31/bin/kubernetes-validate
KV_NEW=$TOOLS/kv-current/bin/kubernetes-validate
CHECKOV=$TOOLS/checkov/bin/checkov
CHART=Helm
NS=btc
RELEASE=btc-price
KUBE_OLD=1.24.17
KV_CURRENT_VERSION=1.33
# A cluster that serves cert-manager and the Prometheus operator: the production renders include the
# chart's Certificates, ServiceMonitor and PrometheusRule (the chart renders each only where its API is).
CLUSTER_APIS="--api-versions cert-manager.io/v1 --api-versions monitoring.coreos.com/v1"

for tool in "$HELM" "$PY" "$KV_OLD" "$KV_NEW" "$CHECKOV" "$TOOLS/npm/node_modules/.bin/readme-generator"; do
  [ -x "$tool" ] || { echo "check-helm: $tool is missing: run scripts/install-k8s-tools.sh" >&2; exit 1; }
done
export HELM
# No __pycache__ in the work tree (Helm/tests, scripts).
export PYTHONDONTWRITEBYTECODE=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Production as deployed: values-production.yaml after the release step (scripts/pin-image-digest.py),
# with a digest made up for the test; the committed file has none until the first release.
PROD_VALUES=$tmp/values-production.yaml
cp "$CHART/values-production.yaml" "$PROD_VALUES"
python3 scripts/pin-image-digest.py "sha256:$(printf release-step-test | sha256sum | cut -c1-64)" --tag 0.0.0-test \
  "$PROD_VALUES" >/dev/null

passed=0
failed=0
step() { printf '\n== %s\n' "$*"; }
ok() { echo "  ok   $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL $*"; failed=$((failed + 1)); }
# run LABEL COMMAND...: ok when the command succeeds; its output is shown only on failure.
run() {
  local label=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$label"; else bad "$label"; sed 's/^/       /' "$tmp/out"; fi
}

step "1. helm lint --strict"
run "lint: defaults" "$HELM" lint --strict "$CHART"
run "lint: production" "$HELM" lint --strict "$CHART" -f "$PROD_VALUES"
run "lint: defaults, kube $KUBE_OLD" "$HELM" lint --strict "$CHART" --kube-version "$KUBE_OLD"
run "lint: production, kube $KUBE_OLD" "$HELM" lint --strict "$CHART" -f "$PROD_VALUES" --kube-version "$KUBE_OLD"

step "2. the schema rejects Helm/tests/bad-values.yaml"
for cmd in lint template; do
  if [ "$cmd" = lint ]; then args=(lint --strict "$CHART"); else args=(template "$RELEASE" "$CHART" -n "$NS"); fi
  if "$HELM" "${args[@]}" -f "$CHART/tests/bad-values.yaml" >"$tmp/bad.out" 2>&1; then
    bad "helm $cmd accepted bad-values.yaml"
  elif grep -q "/publisher/replicaCount': got string, want integer" "$tmp/bad.out" &&
       grep -q "additional properties 'replicas' not allowed" "$tmp/bad.out"; then
    ok "helm $cmd rejects bad-values.yaml (string replicaCount, unknown key)"
  else
    bad "helm $cmd failed on bad-values.yaml, but not with the two schema errors expected:"
    sed 's/^/       /' "$tmp/bad.out"
  fi
done

step "3. helm template -n $NS"
declare -A RENDER_ARGS=(
  [defaults]=""
  [production]="-f $PROD_VALUES $CLUSTER_APIS"
  [defaults-$KUBE_OLD]="--kube-version $KUBE_OLD"
  [production-$KUBE_OLD]="-f $PROD_VALUES --kube-version $KUBE_OLD $CLUSTER_APIS"
  [alternatives]="-f $CHART/tests/alternative-values.yaml"
  [alternatives-$KUBE_OLD]="-f $CHART/tests/alternative-values.yaml --kube-version $KUBE_OLD"
)
# (alternatives: the branches the other two leave off; rendered and validated, not fed to checkov)
RENDERS=(defaults production alternatives "defaults-$KUBE_OLD" "production-$KUBE_OLD" "alternatives-$KUBE_OLD")
for r in "${RENDERS[@]}"; do
  # shellcheck disable=SC2086 # the arguments are words on purpose
  if "$HELM" template "$RELEASE" "$CHART" -n "$NS" ${RENDER_ARGS[$r]} >"$tmp/$r.yaml" 2>"$tmp/err"; then
    ok "render $r: $(grep -c '^kind:' "$tmp/$r.yaml") objects"
  else
    bad "render $r"; sed 's/^/       /' "$tmp/err"
  fi
done
mkdir -p "$tmp/checkov/defaults" "$tmp/checkov/production"
"$HELM" template "$RELEASE" "$CHART" -n "$NS" --output-dir "$tmp/checkov/defaults" >/dev/null
# shellcheck disable=SC2086 # the arguments are words on purpose
"$HELM" template "$RELEASE" "$CHART" -n "$NS" -f "$PROD_VALUES" $CLUSTER_APIS --output-dir "$tmp/checkov/production" >/dev/null

step "4. kubernetes-validate --strict"
# The validators must still catch what they are here for: a typo (strict) and, on 1.24, a field 1.24 lacks.
cat >"$tmp/typo.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: known-bad, namespace: btc}
spec:
  containers:
    - name: c
      image: busybox:1.36.1
      securityContxt: {runAsNonRoot: true}
EOF
cat >"$tmp/sleep.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: known-bad, namespace: btc}
spec:
  containers:
    - name: c
      image: busybox:1.36.1
      lifecycle: {preStop: {sleep: {seconds: 5}}}
EOF
for probe in "typo:$KV_OLD -k 1.24" "typo:$KV_NEW -k $KV_CURRENT_VERSION" "sleep:$KV_OLD -k 1.24"; do
  file=${probe%%:*}; kv=${probe#*:}
  # shellcheck disable=SC2086 # $kv is a command and its arguments
  if $kv --strict "$tmp/$file.yaml" >"$tmp/kb.out" 2>&1; then
    bad "kubernetes-validate (${kv#"$TOOLS"/}) accepted a Pod with a $file"; sed 's/^/       /' "$tmp/kb.out"
  else
    ok "kubernetes-validate (${kv#"$TOOLS"/}) rejects a Pod with a $file"
  fi
done
for r in "${RENDERS[@]}"; do
  case $r in
    *-"$KUBE_OLD") kv=$KV_OLD; k=1.24 ;;
    *) kv=$KV_NEW; k=$KV_CURRENT_VERSION ;;
  esac
  "$kv" --strict -k "$k" "$tmp/$r.yaml" >"$tmp/kv-$r.log" 2>&1
  kv_rc=$?
  if [ "$kv_rc" -eq 0 ] && "$PY" "$CHART/tests/chart_checks.py" kv-report --expect "$(grep -c '^kind:' "$tmp/$r.yaml")" "$tmp/kv-$r.log" >"$tmp/out" 2>&1; then
    ok "kubernetes-validate $r against $k: $(tail -n 1 "$tmp/out" | sed 's/^ *kubernetes-validate: //')"
  else
    bad "kubernetes-validate $r against $k (exit $kv_rc)"; cat "$tmp/out" 2>/dev/null; sed 's/^/       /' "$tmp/kv-$r.log" | grep -v ' passed for resource '
  fi
done
run "CRD objects of the production renders against their CRDs (ServiceMonitor, PrometheusRule, Certificate)" \
  env NODE_PATH=$TOOLS/npm/node_modules node "$CHART/tests/check-crds.cjs" "$tmp/production.yaml" "$tmp/production-$KUBE_OLD.yaml"
if command -v promtool >/dev/null 2>&1; then
  if "$PY" "$CHART/tests/chart_checks.py" prometheus-rules "$tmp/production.yaml" "$tmp/rules.yaml" &&
     promtool check rules "$tmp/rules.yaml" >"$tmp/out" 2>&1; then
    ok "promtool check rules: the PrometheusRule's groups"
  else
    bad "promtool check rules on the PrometheusRule"; sed 's/^/       /' "$tmp/out"
  fi
else
  echo "  skip promtool check of the PrometheusRule (promtool not installed; make tools installs it)"
fi

step "5. checkov --framework kubernetes"
# Its failures must be exactly the justified entries of Helm/checkov-exceptions.yaml (none missing,
# none stale), and it must have passed checks (the RELIABILITY trap: a checkov that ran nothing exits 0).
"$CHECKOV" -d "$tmp/checkov" --framework kubernetes --skip-download --compact --quiet \
  -o json --output-file-path "$tmp/checkov-out" >/dev/null 2>"$tmp/checkov.err"
if [ -s "$tmp/checkov-out/results_json.json" ] &&
   "$PY" "$CHART/tests/chart_checks.py" checkov-exceptions "$CHART/checkov-exceptions.yaml" \
     "$tmp/checkov-out/results_json.json" "$tmp/checkov/defaults" "$tmp/checkov/production" >"$tmp/out" 2>&1; then
  ok "$(tail -n 1 "$tmp/out" | sed 's/^ *//')"
else
  bad "checkov"; cat "$tmp/out" 2>/dev/null; sed 's/^/       /' "$tmp/checkov.err"
fi

step "6. unit tests over the rendered chart"
if "$PY" -m unittest discover -s "$CHART/tests" -p 'test_*.py' >"$tmp/unittest.log" 2>&1; then
  ok "Helm/tests: $(grep -E '^Ran [0-9]+ tests?' "$tmp/unittest.log")"
else
  bad "Helm/tests"; sed 's/^/       /' "$tmp/unittest.log"
fi

step "7. Helm/nats-values.yaml: the NATS server settings and users load in nats-server"
NATS_SERVER=$TOOLS/bin/nats-server
if [ ! -x "$NATS_SERVER" ]; then
  bad "$NATS_SERVER is missing: run scripts/install-tools.sh (make tools)"
elif "$PY" "$CHART/tests/chart_checks.py" nats-conf "$CHART/nats-values.yaml" "$tmp/nats.conf" &&
     PUBLISHER_PASSWORD=p AGGREGATOR_PASSWORD=a FRONTEND_PASSWORD=f ADMIN_PASSWORD=x \
       "$NATS_SERVER" -c "$tmp/nats.conf" -t >"$tmp/out" 2>&1; then
  ok "nats-server -t: $(grep -o 'is valid' "$tmp/out" || cat "$tmp/out")"
else
  bad "nats-server -t on the config of nats-values.yaml"; sed 's/^/       /' "$tmp/out"
fi

echo
echo "check-helm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
