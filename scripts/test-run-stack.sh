#!/usr/bin/env bash
# Why: make demo is what a newcomer runs first; this proves it shows prices and stops cleanly.
# Checks `make demo` end to end as a newcomer would use it: the script starts the stack on ports
# the system picks (read back from $RUN_DIR/addresses.env), curl sees a price from several sources, an average, every default pair, rest-api's OK and Swagger UI,
# the live page works in headless Chromium (scripts/test-dashboard.cjs); then
# SIGINT stops every process.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build comes first, outside the deadline: a compile on a loaded machine is not a slow start.
BUILD_ONLY=1 ./scripts/run-stack.sh
export RUN_DIR; RUN_DIR=$(mktemp -d)
export NATS_PORT=-1 NATS_MONITOR_PORT=-1
export BITCOIN_API_ADDR=127.0.0.1:0 REST_API_ADDR=127.0.0.1:0
export PUBLISHER_OPS_ADDR=127.0.0.1:0 AGGREGATOR_OPS_ADDR=127.0.0.1:0
export BITCOIN_API_OPS_ADDR=127.0.0.1:0 REST_API_OPS_ADDR=127.0.0.1:0
export STANDIN_BASE_PORT=0 DEMO=1 POLL_INTERVAL=500ms

setsid ./scripts/run-stack.sh >"$RUN_DIR/run.out" 2>&1 &
runner=$!
fail() { echo "FAIL: $*" >&2; cat "$RUN_DIR/run.out" >&2; tail -n 20 "$RUN_DIR"/logs/*.log >&2 || true; kill -INT "$runner" 2>/dev/null; exit 1; }

deadline=$((SECONDS + 120))
until [ -s "$RUN_DIR/addresses.env" ]; do
  [ $SECONDS -lt $deadline ] || fail "the stack did not report its addresses within 120 s"
  sleep 0.2
done
# shellcheck disable=SC1091 # written by run-stack.sh
. "$RUN_DIR/addresses.env"
# Polls a price path until it answers 200 or the deadline passes.
wait_for_price() {
  until curl -sf "http://$BITCOIN_API_ADDR/$1" >/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
until price=$(curl -sf "http://$BITCOIN_API_ADDR/btc/USD"); do
  [ $SECONDS -lt $deadline ] || fail "no price from bitcoin-api within 120 s"
  sleep 0.2
done
echo "$price" | python3 -c '
import json, sys
body = json.load(sys.stdin)
used = [s["source"] for s in body["sources"] if s["status"] == "used"]
assert body["currency"] == "USD" and body["price"] > 0, body
assert len(used) >= 3, f"price from {used}"
price = body["price"]
print(f"price {price} from {len(used)} sources")' || fail "bad /btc/USD body: $price"
curl -sf "http://$BITCOIN_API_ADDR/btc/average" | python3 -c '
import json, sys
body = json.load(sys.stdin)
assert body["window_seconds"] == 600 and body["samples"] >= 1 and body["time_weighted_average"] > 0, body' || fail "bad /btc/average"
# Every default pair is quoted by the stand-ins and served at its own paths.
for path in btc/EUR btc/GBP eth/USD; do
  wait_for_price "$path" || fail "no price at /$path within the deadline"
done
curl -sf "http://$BITCOIN_API_ADDR/pairs" | python3 -c '
import json, sys
pairs = json.load(sys.stdin)["pairs"]
assert [p["pair"] for p in pairs] == ["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD"], pairs
assert all(p["fresh"] for p in pairs), pairs' || fail "bad /pairs"
[ "$(curl -sf "http://$REST_API_ADDR/")" = '{"result":"OK"}' ] || fail "rest-api / is not {\"result\":\"OK\"}"
[ "$(curl -sf "http://$BITCOIN_API_ADDR/docs" | grep -ci swagger)" -gt 0 ] || fail "no Swagger UI"
[ "$(curl -sf "http://$REST_API_ADDR/readiness")" = OK ] || fail "rest-api not ready"
# Every service that uses NATS is connected as its own user (the chart's users and permissions);
# rest-api uses none.
users=$(curl -sf "http://127.0.0.1:$NATS_MONITOR_PORT/connz?auth=true" | python3 -c '
import json, sys
print(" ".join(sorted(c.get("authorized_user", "-") for c in json.load(sys.stdin)["connections"])))')
[ "$users" = "aggregator frontend publisher" ] || fail "NATS users connected: $users"
for ops in "$PUBLISHER_OPS_ADDR" "$AGGREGATOR_OPS_ADDR" "$BITCOIN_API_OPS_ADDR"; do
  [ "$(curl -sf "http://$ops/readiness")" = OK ] || fail "ops port $ops not ready"
  [ "$(curl -sf "http://$ops/metrics" | grep -c '^btc_nats_connected 1')" = 1 ] || fail "no metrics on $ops"
done
[ "$(curl -sf "http://$REST_API_OPS_ADDR/metrics" | grep -c '^btc_build_info{component="rest-api"')" = 1 ] \
  || fail "no metrics on rest-api's ops port"
# The frontends' public ports do not serve /metrics: a JSON 404.
for api in "$BITCOIN_API_ADDR" "$REST_API_ADDR"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$api/metrics")" = 404 ] || fail "/metrics served on $api"
done

# Generated requests from each live app's own served spec (/openapi.json: exactly its operations),
# with every check on: no 5xx, every status, header, content type and body as documented, 405 for
# undocumented methods. Judged by schemathesis's exit code.
schemathesis_run() { # base URL
  (cd "$RUN_DIR" && "$OLDPWD/.tools/lint/bin/schemathesis" --config-file "$OLDPWD/schemathesis.toml" \
    run "$1/openapi.json" --url "$1" \
    --checks all --max-examples 50 --seed 1 --no-color --generation-database none) \
    >"$RUN_DIR/schemathesis.out" 2>&1 \
    || { cat "$RUN_DIR/schemathesis.out" >&2; fail "schemathesis found problems on $1"; }
  grep -E "No issues found|Tested" "$RUN_DIR/schemathesis.out" | tr -s ' ' | sed "s|^|schemathesis $1:|"
}
# Every configured pair priced first: a pair still without its first price answers a documented 503,
# which schemathesis's not_a_server_error check would (rightly) report.
until curl -sf "http://$BITCOIN_API_ADDR/pairs" | python3 -c '
import json, sys
sys.exit(0 if all(p["fresh"] for p in json.load(sys.stdin)["pairs"]) else 1)'; do
  [ $SECONDS -lt $deadline ] || fail "not every pair had a fresh price within 120 s: $(curl -s "http://$BITCOIN_API_ADDR/pairs")"
  sleep 0.2
done
schemathesis_run "http://$BITCOIN_API_ADDR"
schemathesis_run "http://$REST_API_ADDR"

# The live page in a real browser: prices pushed by the stream, candles drawn, no console error.
node scripts/test-dashboard.cjs "http://$BITCOIN_API_ADDR" || fail "the live page failed in Chromium"

# Smoke load: a few seconds of keep-alive traffic on every public route; any socket error or
# non-2xx answer fails (speed is measured by `make bench`, not asserted here).
for url in "http://$BITCOIN_API_ADDR/btc/USD" "http://$BITCOIN_API_ADDR/btc/average" "http://$REST_API_ADDR/"; do
  out=$(wrk -t1 -c16 -d2s "$url" 2>&1) || fail "wrk failed on $url: $out"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  if echo "$out" | grep -qE "Non-2xx|Socket errors"; then fail "smoke load on $url: $out"; fi
  [ "${requests:-0}" -gt 100 ] || fail "smoke load on $url made only ${requests:-0} requests"
  echo "smoke load $url: $requests requests, 0 errors, 0 non-2xx"
done

kill -INT -- "-$runner"
for _ in $(seq 1 150); do
  kill -0 "$runner" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$runner" 2>/dev/null && fail "the stack did not stop within 15 s of SIGINT"
if pgrep -f "$RUN_DIR" >/dev/null; then fail "processes left running: $(pgrep -af "$RUN_DIR")"; fi
grep -q "^stopped" "$RUN_DIR/run.out" || fail "run-stack did not report a clean stop"
rm -rf "$RUN_DIR"
echo "make demo: OK (price, average, rest-api, Swagger UI, ops ports, schemathesis, live page in Chromium, smoke load, clean stop)"
