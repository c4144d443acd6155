#!/usr/bin/env bash
# `make bench`: HTTP throughput and latency of the frontends against a bare hyper ceiling, measured
# in the same run on this machine, and the services' memory. Prints one Markdown table.
# Every figure is the median of RUNS runs. Benchmarks print figures; they never fail on speed.
#
# Settings: RUNS (3), DURATION (5s), CONNECTIONS ("64 16"), WRK_THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"64 16"}
WRK_THREADS=${WRK_THREADS:-2}

./scripts/install-tools.sh >/dev/null 2>&1
cargo build --release --bins -p publisher -p aggregator -p frontend -p exchange-standin -p bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export RUN_DIR; RUN_DIR=$(mktemp -d)
export NATS_PORT; NATS_PORT=$(free_port)
export NATS_MONITOR_PORT; NATS_MONITOR_PORT=$(free_port)
export BITCOIN_API_ADDR="127.0.0.1:$(free_port)" REST_API_ADDR="127.0.0.1:$(free_port)"
export PUBLISHER_OPS_ADDR="127.0.0.1:$(free_port)" AGGREGATOR_OPS_ADDR="127.0.0.1:$(free_port)"
export STANDIN_BASE_PORT=0 DEMO=1 PROFILE=release RUST_LOG=warn
CEILING_ADDR="127.0.0.1:$(free_port)"

setsid ./scripts/run-stack.sh >"$RUN_DIR/run.out" 2>&1 &
runner=$!
ceiling=""
cleanup() {
  [ -n "$ceiling" ] && kill "$ceiling" 2>/dev/null || true
  kill -INT -- "-$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
}
trap cleanup EXIT

until curl -sf "http://$BITCOIN_API_ADDR/btc/USD" -o "$RUN_DIR/body.json"; do sleep 0.2; done
target/release/ceiling "$CEILING_ADDR" "$RUN_DIR/body.json" &
ceiling=$!
until curl -sf "http://$CEILING_ADDR/" >/dev/null; do sleep 0.1; done

pid_of() { pgrep -f "target/release/$1" | head -n 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
declare -A idle
for service in publisher aggregator bitcoin-api rest-api; do idle[$service]=$(rss_kib "$(pid_of "$service")"); done

# One wrk run: prints "req/s p50_ms p99_ms errors".
measure() { # url connections
  wrk -t"$WRK_THREADS" -c"$2" -d"$DURATION" --latency "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx|Socket errors/ { errors = 1 }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A result
targets=("ceiling|http://$CEILING_ADDR/" "bitcoin-api /btc/USD|http://$BITCOIN_API_ADDR/btc/USD"
         "bitcoin-api /btc/average|http://$BITCOIN_API_ADDR/btc/average" "rest-api /|http://$REST_API_ADDR/")
for connections in $CONNECTIONS; do
  for entry in "${targets[@]}"; do
    name=${entry%%|*}; url=${entry#*|}
    : >"$RUN_DIR/runs"
    for _ in $(seq 1 "$RUNS"); do measure "$url" "$connections" >>"$RUN_DIR/runs"; done
    rps=$(cut -d' ' -f1 "$RUN_DIR/runs" | median)
    p50=$(cut -d' ' -f2 "$RUN_DIR/runs" | median)
    p99=$(cut -d' ' -f3 "$RUN_DIR/runs" | median)
    errors=$(awk '{ s += $4 } END { print s }' "$RUN_DIR/runs")
    result["$name|$connections"]="$rps $p50 $p99 $errors"
  done
done

echo
echo "## HTTP (wrk -t$WRK_THREADS, keep-alive, $DURATION per run, median of $RUNS runs; $(nproc) cores shared with wrk)"
echo
echo "| target | connections | req/s | p50 ms | p99 ms | req/s vs ceiling | p99 vs ceiling | runs with errors |"
echo "|---|---|---|---|---|---|---|---|"
for connections in $CONNECTIONS; do
  read -r c_rps _ c_p99 _ <<<"${result["ceiling|$connections"]}"
  for entry in "${targets[@]}"; do
    name=${entry%%|*}
    read -r rps p50 p99 errors <<<"${result["$name|$connections"]}"
    awk -v n="$name" -v c="$connections" -v r="$rps" -v p5="$p50" -v p9="$p99" -v cr="$c_rps" -v cp="$c_p99" -v e="$errors" \
      'BEGIN { printf "| %s | %s | %d | %.3f | %.3f | %.2f | %.2f | %d |\n", n, c, r, p5, p9, r / cr, p9 / cp, e }'
  done
done

echo
echo "## Memory (RSS, MiB)"
echo
echo "| service | idle | peak after the HTTP load |"
echo "|---|---|---|"
for service in publisher aggregator bitcoin-api rest-api; do
  pid=$(pid_of "$service")
  awk -v s="$service" -v i="${idle[$service]}" -v p="$(hwm_kib "$pid")" 'BEGIN { printf "| %s | %.1f | %.1f |\n", s, i / 1024, p / 1024 }'
done
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)."
