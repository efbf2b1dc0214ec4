#!/usr/bin/env bash
# The README's test command, on a fresh Debian 12 machine as on a developer's: installs what is
# missing (scripts/install-deps.sh: apt, Debian packages only; fast when everything is there),
# builds everything and runs every test with ctest (unit, and integration: real nats-server and
# redis-server on free loopback ports).
#
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -L unit, scripts/test.sh -R pipeline
#
# Environment (defaults in brackets):
#   BUILD_DIR [build]   BUILD_TYPE [Release]   JOBS [nproc]
#   CDC_WERROR [OFF]    warnings as errors; CI's .ci/run sets ON (a Release -Werror build)
#   CCACHE [auto]       use ccache when it is installed; 0 = never
#   SKIP_INSTALL [unset]  1 = do not run scripts/install-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/build-dir.sh
source scripts/build-dir.sh
BUILD_TYPE=${BUILD_TYPE:-Release}
CDC_WERROR=${CDC_WERROR:-OFF}
JOBS=${JOBS:-$(nproc)}
[ -n "${SKIP_INSTALL:-}" ] || bash scripts/install-deps.sh
BUILD_DIR=$(usable_build_dir "$ROOT" "${BUILD_DIR:-build}")
# shellcheck disable=SC2046  # ccache_flags prints zero or two words
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DCDC_WERROR="$CDC_WERROR" $(ccache_flags)
cmake --build "$BUILD_DIR" -j "$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 "$@"
