#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan + UBSan) and runs it for a bounded time, seeded from
# the sample captures and the contract's golden files. A crash or a broken invariant fails the
# script and leaves the input in $BUILD_DIR/artifacts/ (replay: $BUILD_DIR/transform_fuzzer FILE).
#
#   scripts/fuzz.sh [SECONDS]      (default 60; also FUZZ_SECONDS)
#
# The corpus grows in $BUILD_DIR/corpus and is kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_TO_RUN=${1:-${FUZZ_SECONDS:-60}}
BUILD_DIR=${BUILD_DIR:-build-fuzz}
CXX_FUZZ=${CXX_FUZZ:-clang++-14}
command -v "$CXX_FUZZ" > /dev/null || { echo "fuzz: $CXX_FUZZ not found (scripts/install-deps.sh installs clang-14)" >&2; exit 2; }

cmake -S fuzz -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"

# Seeds: one file per capture line, "<control byte><subject>\n<body>" (see fuzz/transform_fuzzer.cpp).
SEEDS="$BUILD_DIR/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$BUILD_DIR/corpus" "$BUILD_DIR/artifacts"
python3 - "$SEEDS" tools/samples/*.jsonl test/contracts/*.jsonl <<'PY'
import base64, json, os, sys
out = sys.argv[1]
n = 0
for path in sys.argv[2:]:
    for i, line in enumerate(open(path, encoding="utf-8")):
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        rules = rec.get("rules", {})
        rec = rec.get("input", rec)
        body = base64.b64decode(rec["data_base64"]) if "data_base64" in rec else rec.get("data", "").encode("utf-8")
        if len(body) > 16384:
            continue
        control = 4 if rec.get("headers", {}).get("Nats-Msg-Id") else 0
        if rules.get("subject_layout", "").startswith("sequin."):
            control |= 1
        with open(os.path.join(out, "%s-%d" % (os.path.basename(path), i)), "wb") as f:
            f.write(bytes([control]) + rec["subject"].encode("utf-8") + b"\n" + body)
        n += 1
print("fuzz: %d seeds" % n)
PY

echo "fuzz: running transform_fuzzer for ${SECONDS_TO_RUN}s"
"$BUILD_DIR/transform_fuzzer" -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
  -dict="$ROOT/fuzz/transform.dict" -artifact_prefix="$BUILD_DIR/artifacts/" -print_final_stats=1 \
  "$BUILD_DIR/corpus" "$SEEDS"
