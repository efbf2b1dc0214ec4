#!/usr/bin/env bash
# Formats the first-party C and C++ sources (include src test bench tools fuzz) in place with
# .clang-format (clang-format-14, Debian 12). scripts/lint.sh checks the same files in CI.
#
#   scripts/format.sh            every first-party file git knows (tracked or new)
#   scripts/format.sh FILE...    only these
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
command -v "$CLANG_FORMAT" > /dev/null ||
  { echo "format: $CLANG_FORMAT not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
# shellcheck source=scripts/sources.sh
source scripts/sources.sh
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(first_party_sources); fi
[ ${#files[@]} -gt 0 ] || exit 0
printf '%s\0' "${files[@]}" | xargs -0 -n 20 "$CLANG_FORMAT" -i --style=file
echo "format: ${#files[@]} files formatted"
