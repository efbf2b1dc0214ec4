#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running service with events flowing:
# installs what is missing, builds, starts a local nats-server -js and redis-server (unless
# NATS_URL / REDIS_ADDRESS are set), runs the service with config.yaml, replays a sample capture
# and shows what landed. The service keeps running until Ctrl-C.
#
#   scripts/run-local.sh [capture.jsonl ...]    (default: the good and the bad sample captures)
#   NO_REPLAY=1 scripts/run-local.sh            just run the service
#   EXIT_AFTER_REPLAY=1 scripts/run-local.sh    stop once the replay has been shown (for scripts)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [ $# -gt 0 ]; then CAPTURES=("$@"); else
  CAPTURES=("$ROOT/tools/samples/sequin-mixed-2k.jsonl" "$ROOT/tools/samples/bad-examples.jsonl"); fi
BUILD_DIR=${BUILD_DIR:-$ROOT/build}

bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target daisi-cdc-consumer cdc-replay

WORK=$(mktemp -d /tmp/daisi-cdc-local.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; return 1
}

if [ -z "${NATS_URL:-}" ]; then
  port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$WORK/jetstream" > "$WORK/nats-server.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  export NATS_URL="nats://127.0.0.1:$port"
  echo "started nats-server -js on $NATS_URL (log: $WORK/nats-server.log)"
fi
if [ -z "${REDIS_ADDRESS:-}" ]; then
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  export REDIS_ADDRESS="127.0.0.1:$port"
  echo "started redis-server on $REDIS_ADDRESS"
fi
METRICS_PORT=${DAISI_CDC_METRICS_PORT:-$(free_port)}
export DAISI_CDC_METRICS_PORT=$METRICS_PORT

"$BUILD_DIR/daisi-cdc-consumer" --config "$ROOT/config.yaml" &
SERVICE=$!
PIDS=("$SERVICE" "${PIDS[@]}")
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" > /dev/null && break
  kill -0 "$SERVICE" 2>/dev/null || { echo "the service exited" >&2; exit 1; }
  sleep 0.1
done
echo "service ready: http://127.0.0.1:$METRICS_PORT/metrics"

if [ -z "${NO_REPLAY:-}" ]; then
  total=0
  for capture in "${CAPTURES[@]}"; do
    n=$(grep -c . "$capture")
    total=$((total + n))
    echo "replaying $capture ($n messages) into cdc_events_stream"
    "$BUILD_DIR/cdc-replay" publish "$capture" --url "$NATS_URL" --quiet
  done
  completed=0
  for _ in $(seq 1 600); do
    completed=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
      awk '/^cdc_consumer_source_completions_total/ {s+=$2} END {print s+0}')
    [ "$completed" -ge "$total" ] && break
    sleep 0.1
  done
  echo
  echo "== completed $completed of $total source messages; counters:"
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^cdc_consumer_(events_total|dead_letters_total)' | grep -v ' 0$'
  echo
  echo "== first enriched events in wa_stream:"
  "$BUILD_DIR/cdc-replay" capture --url "$NATS_URL" --stream wa_stream --count 3 --quiet
  echo
  echo "== dead letters in cdc_dlq_stream:"
  "$BUILD_DIR/cdc-replay" capture --url "$NATS_URL" --stream cdc_dlq_stream --until-caught-up --quiet | head -c 2000
  echo
fi
if [ -n "${EXIT_AFTER_REPLAY:-}" ]; then exit 0; fi
echo "service running (pid $SERVICE); Ctrl-C to stop"
wait "$SERVICE"
