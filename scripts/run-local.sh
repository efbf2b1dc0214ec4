#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running service with events flowing:
# installs what is missing, builds, starts a local nats-server -js and redis-server (unless
# NATS_URL / REDIS_ADDRESS are set), runs the service with config.yaml, replays a sample capture
# and shows what landed. The service keeps running until Ctrl-C.
#
#   scripts/run-local.sh [capture.jsonl ...]    (default: the good and the bad sample captures)
#   NO_REPLAY=1 scripts/run-local.sh            just run the service
#   EXIT_AFTER_REPLAY=1 scripts/run-local.sh    stop once the replay has been shown (for scripts)
#   BUILD_DIR=dir                               build directory (default build/, shared with
#                                               scripts/test.sh)
#
# An existing build directory is reused as it is (only the two binaries are brought up to date;
# cmake re-runs itself when a CMakeLists.txt changed). One configured for another source tree
# (copied from elsewhere) is left alone and a fresh one is used beside it. On exit the service is
# stopped first and waited for (it drains and acks while NATS and Redis are still there), then the
# servers this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/build-dir.sh
source scripts/build-dir.sh
if [ $# -gt 0 ]; then CAPTURES=("$@"); else
  CAPTURES=("$ROOT/tools/samples/sequin-mixed-2k.jsonl" "$ROOT/tools/samples/bad-examples.jsonl"); fi

bash scripts/install-deps.sh
BUILD_DIR=$(usable_build_dir "$ROOT" "${BUILD_DIR:-$ROOT/build}")
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  # Release, like scripts/test.sh's default: both share build/ without reconfiguring.
  # shellcheck disable=SC2046  # ccache_flags prints zero or two words
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release $(ccache_flags) > /dev/null
fi
cmake --build "$BUILD_DIR" -j "$(nproc)" --target daisi-cdc-consumer cdc-replay

WORK=$(mktemp -d /tmp/daisi-cdc-local.XXXXXX)
SERVICE=""
SERVERS=()
stop_and_wait() {  # pids...: SIGTERM to each, then wait for all of them
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  # The service first, and wait for its drain: stopping NATS at the same moment would make it
  # log disconnects and spend its drain timeout reconnecting.
  if [ -n "$SERVICE" ]; then
    echo "stopping the service (pid $SERVICE)"
    stop_and_wait "$SERVICE"
  fi
  if [ ${#SERVERS[@]} -gt 0 ]; then stop_and_wait "${SERVERS[@]}"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; return 1
}

# Children run in sessions of their own (setsid): Ctrl-C reaches only this script, which then
# stops them in order (nats-server and redis-server would otherwise quit at once on SIGINT).
if [ -z "${NATS_URL:-}" ]; then
  port=$(free_port)
  setsid nats-server -js -a 127.0.0.1 -p "$port" -sd "$WORK/jetstream" > "$WORK/nats-server.log" 2>&1 &
  SERVERS+=($!)
  wait_port "$port"
  export NATS_URL="nats://127.0.0.1:$port"
  echo "started nats-server -js on $NATS_URL (log: $WORK/nats-server.log)"
fi
if [ -z "${REDIS_ADDRESS:-}" ]; then
  port=$(free_port)
  setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
  SERVERS+=($!)
  wait_port "$port"
  export REDIS_ADDRESS="127.0.0.1:$port"
  echo "started redis-server on $REDIS_ADDRESS"
fi
METRICS_PORT=${DAISI_CDC_METRICS_PORT:-$(free_port)}
export DAISI_CDC_METRICS_PORT=$METRICS_PORT

setsid "$BUILD_DIR/daisi-cdc-consumer" --config "$ROOT/config.yaml" &
SERVICE=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" > /dev/null && break
  kill -0 "$SERVICE" 2>/dev/null || { echo "the service exited" >&2; SERVICE=""; exit 1; }
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
  # Whole records (one JSON object a line, body decoded), never cut mid-line; at most ten.
  shown=10
  "$BUILD_DIR/cdc-replay" dlq list --url "$NATS_URL" --quiet > "$WORK/dead-letters.jsonl" || true
  dead=$(grep -c . "$WORK/dead-letters.jsonl" || true)
  echo "== dead letters in cdc_dlq_stream: $dead"
  head -n "$shown" "$WORK/dead-letters.jsonl"
  if [ "$dead" -gt "$shown" ]; then
    echo "... $((dead - shown)) more: $BUILD_DIR/cdc-replay dlq list --url $NATS_URL (or dlq stats)"
  fi
  echo
fi
if [ -n "${EXIT_AFTER_REPLAY:-}" ]; then exit 0; fi
echo "service running (pid $SERVICE); Ctrl-C to stop"
code=0
wait "$SERVICE" || code=$?
SERVICE=""  # it exited on its own (e.g. 3: panic guard): nothing left to stop but the servers
exit "$code"
