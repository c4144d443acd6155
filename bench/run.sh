#!/usr/bin/env bash
# `make bench`: one Markdown table of every figure beside its ceiling, measured in the same run on
# this machine (bench/README.md says what each means):
#   - HTTP req/s and p50/p99 of the frontends against a bare hyper server (the ceiling) serving the
#     same body, with bare Poem and bare poem-openapi servers as the framework floors;
#   - each service's memory, idle and after the HTTP load;
#   - the candles route of a bitcoin-api holding every default pair's history (history-server),
#     against a ceiling serving the same page, and that process's memory;
#   - the pipeline (target/release/pipeline): aggregator catch-up and publish rate against bare
#     async-nats, freshness, cold start;
#   - the stream fan-out (target/release/fanout): 1,000 and 10,000 SSE clients of one bitcoin-api
#     against a bare hyper broadcaster (target/release/sse-ceiling).
# Every figure is the median of RUNS runs. Benchmarks print figures; they never fail on speed.
#
# Settings: RUNS (3), DURATION (5s), CONNECTIONS ("64 16"), WRK_THREADS (2); the pipeline's TICKS,
# PUBLISH_TICKS, FRESHNESS_TICKS (bench/src/pipeline.rs); FANOUT_CLIENTS, FANOUT_TICKS
# (bench/src/fanout.rs); PIPELINE=0 skips the pipeline, HISTORY=0 the candles route, FANOUT=0 the
# fan-out.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"64 16"}
WRK_THREADS=${WRK_THREADS:-2}

./scripts/install-tools.sh >/dev/null 2>&1
# The same build as run-stack.sh with PROFILE=release (the workspace's feature set), so it runs once.
cargo build --release --workspace --bins

# Every port is picked by the system and read back: the stack's from $RUN_DIR/addresses.env
# (run-stack.sh), the reference servers' from their `listening addr=...` line.
export RUN_DIR; RUN_DIR=$(mktemp -d)
export NATS_PORT=-1 NATS_MONITOR_PORT=-1
export BITCOIN_API_ADDR=127.0.0.1:0 REST_API_ADDR=127.0.0.1:0
export PUBLISHER_OPS_ADDR=127.0.0.1:0 AGGREGATOR_OPS_ADDR=127.0.0.1:0
export BITCOIN_API_OPS_ADDR=127.0.0.1:0 REST_API_OPS_ADDR=127.0.0.1:0
# Quiet, but for the `listening` lines that say which ports the services were given.
export STANDIN_BASE_PORT=0 DEMO=1 PROFILE=release RUST_LOG=warn,publisher=info,aggregator=info,frontend::server=info

setsid ./scripts/run-stack.sh >"$RUN_DIR/run.out" 2>&1 &
runner=$!
references=()
stop_references() {
  if [ ${#references[@]} -gt 0 ]; then
    kill "${references[@]}" 2>/dev/null || true
    wait "${references[@]}" 2>/dev/null || true
  fi
  references=()
}
cleanup() {
  stop_references
  kill -INT -- "-$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
}
trap cleanup EXIT

until [ -s "$RUN_DIR/addresses.env" ]; do sleep 0.2; done
# shellcheck disable=SC1091 # written by run-stack.sh
. "$RUN_DIR/addresses.env"
until curl -sf "http://$BITCOIN_API_ADDR/btc/USD" -o "$RUN_DIR/body.json"; do sleep 0.2; done
reference() { # variable, name, body file, command...: starts a reference server on port 0, sets the variable to its address
  local variable=$1 name=$2 body=$3; shift 3
  "$@" 127.0.0.1:0 "$body" >"$RUN_DIR/$name.out" 2>&1 &
  references+=($!)
  until grep -q "^listening addr=" "$RUN_DIR/$name.out"; do sleep 0.1; done
  printf -v "$variable" '%s' "$(sed -n 's/^listening addr=//p' "$RUN_DIR/$name.out" | head -n 1)"
  until curl -sf "http://${!variable}/" >/dev/null; do sleep 0.1; done
}
reference CEILING_ADDR ceiling "$RUN_DIR/body.json" target/release/ceiling
reference POEM_ADDR poem-floor "$RUN_DIR/body.json" target/release/poem-floor
reference OPENAPI_ADDR poem-openapi-floor "$RUN_DIR/body.json" target/release/poem-floor --openapi

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
measure_all() { # "name|url"...: the median of RUNS wrk runs at each connection count, into result[name|connections]
  local connections entry name url
  for connections in $CONNECTIONS; do
    for entry in "$@"; do
      name=${entry%%|*}; url=${entry#*|}
      : >"$RUN_DIR/runs"
      for _ in $(seq 1 "$RUNS"); do measure "$url" "$connections" >>"$RUN_DIR/runs"; done
      result["$name|$connections"]="$(cut -d' ' -f1 "$RUN_DIR/runs" | median) $(cut -d' ' -f2 "$RUN_DIR/runs" | median) \
$(cut -d' ' -f3 "$RUN_DIR/runs" | median) $(awk '{ s += $4 } END { print s }' "$RUN_DIR/runs")"
    done
  done
}
# The table's two rows per name and connection count: req/s and p50 / p99 beside the ceiling's.
# A minimum ratio of "-" marks a floor: a reference (what the framework costs), not a target.
ratio_rows() { # connections ceiling-name min-req/s-ratio max-p99-ratio name
  local c_rps c_p50 c_p99 rps p50 p99 errors
  read -r c_rps c_p50 c_p99 _ <<<"${result["$2|$1"]}"
  read -r rps p50 p99 errors <<<"${result["$5|$1"]}"
  awk -v n="$5" -v c="$1" -v r="$rps" -v p5="$p50" -v p9="$p99" -v e="$errors" \
      -v cr="$c_rps" -v c5="$c_p50" -v cp="$c_p99" -v min="$3" -v max="$4" 'BEGIN {
    floor = min == "-"
    met_rps = floor ? "—" : (r / cr >= min ? "yes" : "**no**")
    met_p99 = floor ? "—" : (p9 / cp <= max ? "yes" : "**no**")
    note = e > 0 ? sprintf(" (%d runs with errors)", e) : ""
    printf "| %s, %s conns: req/s%s | %d | %d | %.2f | %s | %s |\n", n, c, note, r, cr, r / cr, floor ? "—" : ">= " min, met_rps
    printf "| %s, %s conns: p50 / p99 ms | %.2f / %.2f | %.2f / %.2f | %.2f (p99) | %s | %s |\n", n, c, p5, p9, c5, cp, p9 / cp, floor ? "—" : "p99 <= " max "x", met_p99
  }'
}
memory_row() { # name pid idle-KiB target-MiB label
  awk -v s="$1" -v i="$3" -v p="$(hwm_kib "$2")" -v t="$4" -v l="$5" 'BEGIN {
    printf "| %s memory: RSS %s / peak after the HTTP load, MiB | %.1f / %.1f | — | — | %s <= %d | %s |\n", s, l, i / 1024, p / 1024, l, t, (i / 1024 <= t ? "yes" : "**no**")
  }'
}

frontends=("bitcoin-api /btc/USD|http://$BITCOIN_API_ADDR/btc/USD"
           "bitcoin-api /btc/average|http://$BITCOIN_API_ADDR/btc/average" "rest-api /|http://$REST_API_ADDR/")
measure_all "ceiling|http://$CEILING_ADDR/" "floor: bare Poem|http://$POEM_ADDR/" \
  "floor: bare poem-openapi|http://$OPENAPI_ADDR/" "${frontends[@]}"

# The table is printed once, at the end, after the pipeline's progress on stderr.
table="$RUN_DIR/table.md"
{
echo
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "## make bench, $(date -u +%Y-%m-%d): $(nproc) cores of ${cpu:-an unknown CPU} (shared with the load generators), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), release build"
echo
echo "HTTP: wrk -t$WRK_THREADS, keep-alive, $DURATION per run; every figure is the median of $RUNS runs."
echo
echo "| measure | figure | ceiling, same run | ratio | target | met |"
echo "|---|---|---|---|---|---|"
for connections in $CONNECTIONS; do
  ratio_rows "$connections" ceiling - - "floor: bare Poem"
  ratio_rows "$connections" ceiling - - "floor: bare poem-openapi"
  for entry in "${frontends[@]}"; do ratio_rows "$connections" ceiling 0.85 1.25 "${entry%%|*}"; done
done
for service in publisher aggregator bitcoin-api rest-api; do
  memory_row "$service" "$(pid_of "$service")" "${idle[$service]}" 20 idle
done
} >"$table"

# The history and the pipeline start their own nats-servers and services: the stack stops first.
cleanup
trap - EXIT

if [ "${HISTORY:-1}" != 0 ]; then
  target/release/history-server "$RUN_DIR" >"$RUN_DIR/history.out" 2>"$RUN_DIR/history.err" &
  history=$!
  trap 'stop_references; kill "$history" 2>/dev/null; wait "$history" 2>/dev/null' EXIT
  until grep -q '^ready=1' "$RUN_DIR/history.out"; do
    kill -0 "$history" 2>/dev/null || { cat "$RUN_DIR/history.err" >&2; exit 1; }
    sleep 0.2
  done
  fact() { sed -n "s/^$1=//p" "$RUN_DIR/history.out"; }
  history_addr=$(fact addr); history_pid=$(fact pid)
  history_loaded=$(rss_kib "$history_pid")
  reference CANDLES_1M_ADDR ceiling-1m "$RUN_DIR/candles-1m.json" target/release/ceiling
  reference CANDLES_1H_ADDR ceiling-1h "$RUN_DIR/candles-1h.json" target/release/ceiling
  day="bitcoin-api candles, a day of 1m (1,440 candles, $(stat -c %s "$RUN_DIR/candles-1m.json") bytes)"
  week="bitcoin-api candles, a week of 1h (168 candles, $(stat -c %s "$RUN_DIR/candles-1h.json") bytes)"
  measure_all "ceiling: day|http://$CANDLES_1M_ADDR/" "ceiling: week|http://$CANDLES_1H_ADDR/" \
    "$day|http://$history_addr$(fact path_1m)" "$week|http://$history_addr$(fact path_1h)"
  {
  for connections in $CONNECTIONS; do
    ratio_rows "$connections" "ceiling: day" 0.5 2 "$day"
    ratio_rows "$connections" "ceiling: week" 0.5 2 "$week"
  done
  memory_row "bitcoin-api with every default pair's history cached ($(fact stored) candles)" \
    "$history_pid" "$history_loaded" 64 "loaded"
  echo "| bitcoin-api reading that history at start (informational): ms from spawn to served | $(fact loaded_ms) | — | — | — | — |"
  } >>"$table"
  stop_references
  kill "$history"; wait "$history" 2>/dev/null || true
  trap - EXIT
fi

if [ "${PIPELINE:-1}" != 0 ]; then
  # Its progress goes to stderr, its rows to stdout.
  target/release/pipeline --rows >>"$table"
fi
if [ "${FANOUT:-1}" != 0 ]; then
  # 10,000 clients hold 10,000 sockets in this process and 10,000 in bitcoin-api: the soft file
  # limit goes up to the hard one (fanout checks it is enough).
  ulimit -n "$(ulimit -Hn)"
  target/release/fanout >>"$table"
fi
cat "$table"
