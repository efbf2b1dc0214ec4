#!/usr/bin/env bash
# Installs what building, testing and running the service needs, from Debian 12 packages only.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libnats-dev libhiredis-dev libuv1-dev libsimdjson-dev libconcurrentqueue-dev
  libyaml-cpp-dev libcli11-dev libcpp-httplib-dev libfmt-dev libssl-dev
  catch2 libbenchmark-dev
  nats-server redis-server prometheus
  curl python3
)

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
