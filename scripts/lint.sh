#!/usr/bin/env bash
# Formatting and static analysis; CI runs it after the tests (.ci/run). Fails on any formatting
# difference (.clang-format) or clang-tidy finding (.clang-tidy). Debian 12's clang-format-14 and
# clang-tidy-14 (scripts/packages-test.txt).
#
#   scripts/lint.sh                  format check of every first-party file (fast); clang-tidy on
#                                    the .cpp files changed since LINT_BASE (below)
#   TIDY_FILES=all scripts/lint.sh   clang-tidy on every first-party .cpp file (slow: 81 files, about
#                                    8 minutes of CPU; 10-18 minutes measured on a loaded 2-core VM)
#   TIDY_FILES=none                  format check only
#   scripts/format.sh                fixes what the format check finds
#
# Environment:
#   BUILD_DIR [build]  holds compile_commands.json (scripts/test.sh configures it; configured here
#                      when missing). clang-tidy checks the files compiled there: src, test, bench,
#                      tools (fuzz/ is its own clang project and is only format-checked).
#   LINT_BASE          the commit "changed" is measured from. Default: the merge-base of HEAD with
#                      origin/main (else main): a branch's own commits. When that is HEAD itself (CI
#                      on main, or a branch with nothing of its own), HEAD~1: the commit under test.
#                      A fresh CI clone has the full history, so the merge-base is found. Uncommitted
#                      changes and new files count as changed. A changed header brings in every .cpp
#                      that includes it.
#   JOBS [nproc]       parallel clang-tidy processes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/sources.sh
source scripts/sources.sh
# shellcheck source=scripts/build-dir.sh
source scripts/build-dir.sh
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
TIDY_FILES=${TIDY_FILES:-changed}
JOBS=${JOBS:-$(nproc)}
failures=0

# 1. Formatting: every first-party file.
command -v "$CLANG_FORMAT" > /dev/null || { echo "lint: $CLANG_FORMAT not found (scripts/install-deps.sh)" >&2; exit 2; }
mapfile -t sources < <(first_party_sources)
unformatted=()
for f in "${sources[@]}"; do
  if ! "$CLANG_FORMAT" --style=file --dry-run --Werror "$f" > /dev/null 2>&1; then unformatted+=("$f"); fi
done
if [ ${#unformatted[@]} -gt 0 ]; then
  echo "lint: ${#unformatted[@]} of ${#sources[@]} files are not formatted (.clang-format); scripts/format.sh fixes them:"
  printf '  %s\n' "${unformatted[@]}"
  for f in "${unformatted[@]}"; do "$CLANG_FORMAT" --style=file "$f" | diff -u "$f" - || true; done | head -n 200
  failures=$((failures + 1))
else
  echo "lint: format ok (${#sources[@]} files)"
fi

# 2. clang-tidy.
[ "$TIDY_FILES" = none ] && { [ "$failures" -eq 0 ]; exit; }
command -v "$CLANG_TIDY" > /dev/null || { echo "lint: $CLANG_TIDY not found (scripts/install-deps.sh)" >&2; exit 2; }
BUILD_DIR=$(usable_build_dir "$ROOT" "${BUILD_DIR:-build}")
if [ ! -f "$BUILD_DIR/compile_commands.json" ]; then
  # shellcheck disable=SC2046  # ccache_flags prints zero or two words
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" $(ccache_flags) > /dev/null
fi
# What the build compiles (relative paths), first-party only.
mapfile -t compiled < <(python3 - "$BUILD_DIR/compile_commands.json" "$ROOT" <<'PY'
import json, os, sys
root = os.path.realpath(sys.argv[2])
seen = set()
for entry in json.load(open(sys.argv[1])):
    path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    if rel.split(os.sep)[0] in ("src", "test", "bench", "tools") and rel not in seen:
        seen.add(rel)
        print(rel)
PY
)
if [ "$TIDY_FILES" = all ]; then
  targets=("${compiled[@]}")
  echo "lint: clang-tidy on all ${#targets[@]} first-party .cpp files"
elif [ "$TIDY_FILES" = changed ]; then
  base=${LINT_BASE:-}
  if [ -z "$base" ]; then
    for ref in origin/main main; do
      base=$(git merge-base HEAD "$ref" 2>/dev/null) && break || base=""
    done
    if [ -z "$base" ] || [ "$base" = "$(git rev-parse HEAD)" ]; then base=$(git rev-parse HEAD~1 2>/dev/null || true); fi
  fi
  [ -n "$base" ] || { echo "lint: no base commit to compare with; set LINT_BASE or TIDY_FILES=all" >&2; exit 2; }
  mapfile -t changed < <({ git diff --name-only "$base" --; git ls-files --others --exclude-standard; } |
                         grep -E '\.(c|cc|cpp|h|hpp)$' | sort -u)
  declare -A pick=()
  for f in "${changed[@]}"; do
    [ -f "$f" ] || continue  # deleted
    case "$f" in
      *.h|*.hpp)
        # Every compiled file that includes this header by name.
        name=$(basename "$f")
        for c in "${compiled[@]}"; do
          grep -Eq "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]([^\">]*/)?$name[\">]" "$c" && pick["$c"]=1
        done ;;
      *) for c in "${compiled[@]}"; do [ "$c" = "$f" ] && pick["$c"]=1; done ;;
    esac
  done
  targets=("${!pick[@]}")
  echo "lint: clang-tidy on ${#targets[@]} .cpp files changed since $(git rev-parse --short "$base") (or including a changed header)"
else
  echo "lint: TIDY_FILES must be changed, all or none" >&2
  exit 2
fi
if [ ${#targets[@]} -gt 0 ]; then
  start=$(date +%s)
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  rc=0
  printf '%s\0' "${targets[@]}" | xargs -0 -P "$JOBS" -n 1 "$CLANG_TIDY" -p "$BUILD_DIR" --quiet > "$log" 2>&1 || rc=$?
  # clang-tidy's own chatter ("N warnings generated", suppressed counts) is noise here.
  grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter' "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "lint: clang-tidy found problems (see above)"
    failures=$((failures + 1))
  else
    echo "lint: clang-tidy ok ($(( $(date +%s) - start )) s)"
  fi
fi
[ "$failures" -eq 0 ]
