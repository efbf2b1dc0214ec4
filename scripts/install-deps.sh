#!/usr/bin/env bash
# Installs what building, testing and running the service needs, from Debian 12 packages only.
# Idempotent: installs only what is missing. Needs root (or sudo).
#
# The package lists live in scripts/packages-{build,runtime,test}.txt (one per line, '#'
# comments); the Dockerfile installs from the same files (scripts/check-dockerfile.sh checks it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

PACKAGES=()
for list in packages-build.txt packages-runtime.txt packages-test.txt; do
  while read -r p; do
    [ -n "$p" ] || continue
    # The same package may be listed in several files (curl, ca-certificates).
    [[ " ${PACKAGES[*]} " == *" $p "* ]] || PACKAGES+=("$p")
  done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/$list")
done

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
