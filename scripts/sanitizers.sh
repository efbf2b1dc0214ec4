#!/usr/bin/env bash
# Builds the unit and stress tests (ctest label `unit`, where the ring and wait-strategy stress
# cases are, and label `stress`: the real pipeline on in-process mocks under each thread mapping,
# test/stress) with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and with
# ThreadSanitizer (build-tsan/), and runs them. Any report fails the run. The pipeline stress
# test runs CDC_STRESS_EVENTS deliveries per mapping (default here: 30 000 under ASan, 10 000
# under TSan: a few seconds each on 2 cores; CI has a 30-minute budget).
#
#   scripts/sanitizers.sh            both
#   scripts/sanitizers.sh asan|tsan  one of them
#   TSAN_TESTS=all                   TSan on every unit test, not only the concurrent ones
#
# Under TSan (5-15x slower) only the cases that run threads are selected by default, by their
# Catch2 tags: the ring and wait-strategy stress tests, the async logger, the metrics registry,
# the rules hand-over and the publish stage's lanes (TSAN_TESTS='[ring],[wait]' picks others).
# The single-threaded parse and config cases run under ASan/UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
WHICH=${1:-all}

# Fail on the first report, with a stack; UBSan is not recoverable either (-fno-sanitize-recover
# is not in CDC_SANITIZE, so halt_on_error does it at run time).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

run() {
  local name=$1 sanitize=$2 dir=build-$1
  echo "== $name: -DCDC_SANITIZE=$sanitize ($dir)"
  # -O1 -g1: what the sanitizers' documentation recommends (usable stacks with file:line), and
  # quicker to compile than -O2 -g (CI has a 30-minute budget).
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DCDC_SANITIZE="$sanitize" -DCDC_BUILD_BENCH=OFF -DCDC_WERROR=ON > /dev/null
  # Only what the unit label runs: the pure core and its tests (no servers, no service binary).
  cmake --build "$dir" -j "$JOBS" --target cdc_unit_tests cdc_stress_tests
  local filter=()
  local tsan_tests=${TSAN_TESTS:-[ring],[wait],[stress],[log],[metrics],[reload],[lanes]}
  if [ "$name" = tsan ] && [ "$tsan_tests" != all ]; then
    # One ctest test per Catch2 case: select by the cases' tags.
    mapfile -t cases < <("$dir/test/cdc_unit_tests" "$tsan_tests" --list-test-names-only | sed '/^$/d')
    local regex
    regex=$(printf '%s\n' "${cases[@]}" | sed 's/[][\\.*^$+?(){}|]/\\&/g' | paste -sd'|')
    filter=(-R "^($regex)\$")
  fi
  # dockerfile_in_step* (label unit) check the service's and the worker's shared libraries: not built here.
  (cd "$dir" && ctest -L unit -E '^dockerfile_in_step' "${filter[@]}" --output-on-failure --timeout 600 -j "$JOBS")
  local events=30000
  [ "$name" = tsan ] && events=10000
  (cd "$dir" && CDC_STRESS_EVENTS=${CDC_STRESS_EVENTS:-$events} ctest -L stress --output-on-failure --timeout 600)
}

case "$WHICH" in
  asan) run asan address,undefined ;;
  tsan) run tsan thread ;;
  all) run asan address,undefined; run tsan thread ;;
  *) echo "usage: scripts/sanitizers.sh [asan|tsan|all]" >&2; exit 2 ;;
esac
