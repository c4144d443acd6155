#!/usr/bin/env bash
# Why: make run / make demo: the whole pipeline on one machine, with the chart's NATS users, without Kubernetes.
# Runs the whole pipeline locally: nats-server (JetStream, store in .run/) and the four services.
# DEMO=1 also starts the built-in exchange stand-ins and points the publisher at them, so a
# machine without internet shows live, moving prices. Ctrl-C (or SIGTERM) stops everything.
#
# Settings (environment): PROFILE=debug|release, RUN_DIR, NATS_PORT, NATS_MONITOR_PORT,
# BITCOIN_API_ADDR, REST_API_ADDR, PUBLISHER_OPS_ADDR, AGGREGATOR_OPS_ADDR, BITCOIN_API_OPS_ADDR,
# REST_API_OPS_ADDR, STANDIN_BASE_PORT, plus every service variable (SOURCES, ...).
# Port 0 in an address (-1 for the NATS ports) lets the system pick: the bound addresses are read
# back (nats-server's ports file, each service's `listening` log line) and written to
# $RUN_DIR/addresses.env, which scripts that drive the stack source (test-run-stack.sh, bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-debug}
DEMO=${DEMO:-0}
RUN_DIR=${RUN_DIR:-.run}
NATS_PORT=${NATS_PORT:-4222}
NATS_MONITOR_PORT=${NATS_MONITOR_PORT:-8222}
BITCOIN_API_ADDR=${BITCOIN_API_ADDR:-127.0.0.1:8080}
REST_API_ADDR=${REST_API_ADDR:-127.0.0.1:8081}
PUBLISHER_OPS_ADDR=${PUBLISHER_OPS_ADDR:-127.0.0.1:9090}
AGGREGATOR_OPS_ADDR=${AGGREGATOR_OPS_ADDR:-127.0.0.1:9091}
BITCOIN_API_OPS_ADDR=${BITCOIN_API_OPS_ADDR:-127.0.0.1:9092}
REST_API_OPS_ADDR=${REST_API_OPS_ADDR:-127.0.0.1:9093}
STANDIN_BASE_PORT=${STANDIN_BASE_PORT:-9100}

./scripts/install-tools.sh
# The workspace's feature set, as `make test` builds it (examples included: building them turns on
# the dev-dependencies' features), so that its stack test compiles no dependency a second time.
cargo_flags=(--workspace --bins --examples)
if [ "$PROFILE" = release ]; then cargo_flags+=(--release); fi
cargo build "${cargo_flags[@]}"
if [ -n "${BUILD_ONLY:-}" ]; then exit 0; fi
bin=target/$PROFILE

logs=$RUN_DIR/logs
mkdir -p "$logs" "$RUN_DIR/jetstream"
pids=()
stop_all() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping..." >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "stopped" >&2
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start() { # name, command...
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
}

wait_until() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what (logs in $logs/)" >&2
  exit 1
}

# NATS users and permissions as in the chart (deploy/local/nats-auth.conf is generated from
# Helm/nats-values.yaml); fresh random passwords each run, given to the services as files (as the
# chart mounts its Secret). NATS_AUTH=0 runs without them.
nats_args=(-js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -sd "$RUN_DIR/jetstream" --ports_file_dir "$RUN_DIR")
secrets=$RUN_DIR/secrets
if [ "${NATS_AUTH:-1}" = 1 ]; then
  mkdir -p "$secrets" && chmod 700 "$secrets"
  for role in PUBLISHER AGGREGATOR FRONTEND ADMIN; do
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    export "${role}_PASSWORD=$password"   # nats-server reads them from the environment
    (umask 077 && printf '%s' "$password" >"$secrets/$(echo "$role" | tr A-Z a-z)-password")
  done
  nats_args=(-c deploy/local/nats-auth.conf "${nats_args[@]}")
  printf 'NATS admin: user admin, password %s\n' "$ADMIN_PASSWORD" >"$RUN_DIR/nats-admin.txt"
fi
as_user() { # role: prints NATS_USER=... NATS_PASSWORD_FILE=... for env(1)
  if [ "${NATS_AUTH:-1}" = 1 ]; then
    echo "NATS_USER=$1" "NATS_PASSWORD_FILE=$secrets/$1-password"
  fi
}
start nats-server .tools/bin/nats-server "${nats_args[@]}"
ports_file="$RUN_DIR/nats-server_${pids[-1]}.ports"
wait_until "nats-server's ports file" test -s "$ports_file"
port_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][0].rsplit(":", 1)[1])' "$ports_file" "$1"; }
NATS_PORT=$(port_of nats)
NATS_MONITOR_PORT=$(port_of monitoring)
wait_until "nats-server" curl -sf "http://127.0.0.1:$NATS_MONITOR_PORT/healthz"
export NATS_URL="nats://127.0.0.1:$NATS_PORT"

if [ "$DEMO" = 1 ]; then
  "$bin/exchange-standin" --base-port "$STANDIN_BASE_PORT" >"$RUN_DIR/standin.env" 2>"$logs/exchange-standin.log" &
  pids+=($!)
  wait_until "the exchange stand-ins" grep -q '^SOURCE_URLS=' "$RUN_DIR/standin.env"
  SOURCE_URLS=$(sed -n 's/^SOURCE_URLS=//p' "$RUN_DIR/standin.env")
  SOURCES=$(echo "$SOURCE_URLS" | tr ',' '\n' | cut -d= -f1 | paste -sd, -)
  export SOURCE_URLS SOURCES
fi

# The setup step, as the chart's hook Job runs it: the admin creates the ticks stream and the
# buckets (or brings them to this configuration); the services' own users may not.
# shellcheck disable=SC2046 # as_user prints words for env
if ! env $(as_user admin) "$bin/publisher" setup >"$logs/setup.log" 2>&1; then
  echo "the NATS setup step failed; see $logs/setup.log" >&2
  exit 1
fi

# shellcheck disable=SC2046 # as_user prints words for env
start publisher env OPS_ADDR="$PUBLISHER_OPS_ADDR" $(as_user publisher) "$bin/publisher"
# shellcheck disable=SC2046
start aggregator env OPS_ADDR="$AGGREGATOR_OPS_ADDR" $(as_user aggregator) "$bin/aggregator"
# shellcheck disable=SC2046
start bitcoin-api env LISTEN_ADDR="$BITCOIN_API_ADDR" OPS_ADDR="$BITCOIN_API_OPS_ADDR" $(as_user frontend) "$bin/bitcoin-api"
# rest-api needs no NATS: its `/` answers from nothing.
start rest-api env LISTEN_ADDR="$REST_API_ADDR" OPS_ADDR="$REST_API_OPS_ADDR" "$bin/rest-api"
# The address in field $2 of service $1's `listening` line (text logs, colours stripped; poem's own
# `listening addr=socket://...` lines have no address of this form and are skipped).
address_in() { sed 's/\x1b\[[0-9;]*m//g' "$logs/$1.log" | grep "listening" | grep -m1 -o " $2=[0-9][^ ]*"; }
listening() {
  wait_until "$1 to listen" address_in "$1" "$2"
  address_in "$1" "$2" | cut -d= -f2
}
PUBLISHER_OPS_ADDR=$(listening publisher ops_addr)
AGGREGATOR_OPS_ADDR=$(listening aggregator ops_addr)
BITCOIN_API_ADDR=$(listening bitcoin-api addr)
BITCOIN_API_OPS_ADDR=$(listening bitcoin-api ops_addr)
REST_API_ADDR=$(listening rest-api addr)
REST_API_OPS_ADDR=$(listening rest-api ops_addr)
wait_until "bitcoin-api" curl -sf "http://$BITCOIN_API_ADDR/liveness"
wait_until "rest-api" curl -sf "http://$REST_API_ADDR/liveness"
cat >"$RUN_DIR/addresses.env.tmp" <<ENV
NATS_URL=$NATS_URL
NATS_PORT=$NATS_PORT
NATS_MONITOR_PORT=$NATS_MONITOR_PORT
PUBLISHER_OPS_ADDR=$PUBLISHER_OPS_ADDR
AGGREGATOR_OPS_ADDR=$AGGREGATOR_OPS_ADDR
BITCOIN_API_ADDR=$BITCOIN_API_ADDR
BITCOIN_API_OPS_ADDR=$BITCOIN_API_OPS_ADDR
REST_API_ADDR=$REST_API_ADDR
REST_API_OPS_ADDR=$REST_API_OPS_ADDR
ENV
mv "$RUN_DIR/addresses.env.tmp" "$RUN_DIR/addresses.env"

cat <<TXT
The stack is up$([ "$DEMO" = 1 ] && echo " (demo: prices from local exchange stand-ins)").
  current price   curl http://$BITCOIN_API_ADDR/btc/USD
  10-min average  curl http://$BITCOIN_API_ADDR/btc/average
  rest-api        curl http://$REST_API_ADDR/
  Swagger UI      http://$BITCOIN_API_ADDR/docs   and   http://$REST_API_ADDR/docs
  metrics         http://$BITCOIN_API_OPS_ADDR/metrics (bitcoin-api)  http://$REST_API_OPS_ADDR/metrics (rest-api)
                  http://$PUBLISHER_OPS_ADDR/metrics (publisher)  http://$AGGREGATOR_OPS_ADDR/metrics (aggregator)
  NATS            $NATS_URL (monitoring http://127.0.0.1:$NATS_MONITOR_PORT)$([ "${NATS_AUTH:-1}" = 1 ] && echo "
                  one user per service, as in the chart; admin password in $RUN_DIR/nats-admin.txt")
  logs            tail -f $logs/*.log
Ctrl-C stops everything.
TXT

# Runs until Ctrl-C, or until a service dies on its own (then everything stops, exit 1).
set +e
wait -n "${pids[@]}"
status=$?
echo "a service exited (status $status); see $logs/" >&2
exit 1
