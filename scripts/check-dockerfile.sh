#!/usr/bin/env bash
# Keeps the Dockerfile in step with the install script and the test build, without a Docker
# engine (ctest: dockerfile_in_step). Usage: scripts/check-dockerfile.sh [path/to/daisi-cdc-consumer]
#
# Checks:
#  1. scripts/install-deps.sh reads packages-build.txt, packages-runtime.txt and packages-test.txt;
#  2. the Dockerfile COPYs packages-build.txt into the build stage and packages-runtime.txt into
#     the runtime stage and installs from them, and names no package in an apt-get line itself;
#  3. its cmake configure step uses scripts/test.sh's default build type (and -Werror exactly
#     when test.sh defaults to it) and its build step builds daisi-cdc-consumer;
#  4. every list is non-empty, has no duplicates, and names only packages apt knows (when
#     apt-cache works), and the runtime list holds the packages the image needs;
#  5. with the binary: every library it needs (readelf NEEDED) comes from a package in
#     packages-runtime.txt or from libc / libstdc++ / libgcc, and every library ldd resolves
#     comes from those packages or from their (installed) dependencies.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BINARY="${1:-}"
DOCKERFILE="$ROOT/Dockerfile"
failures=0
fail() { echo "check-dockerfile: FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "check-dockerfile: ok: $*"; }

packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$ROOT/scripts/$1" | grep -v '^$' || true; }

# 1. install-deps.sh reads the three lists.
for list in packages-build.txt packages-runtime.txt packages-test.txt; do
  [ -s "$ROOT/scripts/$list" ] || { fail "scripts/$list missing or empty"; continue; }
  grep -q "$list" "$ROOT/scripts/install-deps.sh" || fail "scripts/install-deps.sh does not read $list"
  dups=$(packages "$list" | sort | uniq -d)
  [ -z "$dups" ] || fail "$list lists twice: $dups"
done
ok "install-deps.sh reads the package lists"

# 2. The Dockerfile installs from the lists, stage by stage.
[ -f "$DOCKERFILE" ] || { echo "check-dockerfile: FAIL: no Dockerfile" >&2; exit 1; }
stage_of() {  # prints the lines of the stage named $1 (FROM ... AS $1 up to the next FROM)
  awk -v want="$1" 'toupper($1)=="FROM" { inside = (tolower($NF) == want) } inside' "$DOCKERFILE"
}
build_stage=$(stage_of build)
runtime_stage=$(stage_of runtime)
[ -n "$build_stage" ] || fail "Dockerfile has no stage 'AS build'"
[ -n "$runtime_stage" ] || fail "Dockerfile has no stage 'AS runtime'"
grep -q '^FROM debian:bookworm AS build' "$DOCKERFILE" || fail "build stage is not FROM debian:bookworm"
grep -q '^FROM debian:bookworm-slim AS runtime' "$DOCKERFILE" || fail "runtime stage is not FROM debian:bookworm-slim"
check_stage_installs() {  # stage-text list
  local text="$1" list="$2"
  grep -Eq "^COPY scripts/$list /tmp/$list\$" <<<"$text" || fail "stage does not COPY scripts/$list"
  grep -Fq "/tmp/$list | xargs -r apt-get install" <<<"$text" || fail "stage does not install from /tmp/$list"
}
check_stage_installs "$build_stage" packages-build.txt
check_stage_installs "$runtime_stage" packages-runtime.txt
grep -q 'packages-test.txt' "$DOCKERFILE" && fail "the image must not install test-only packages"
all_packages=$( { packages packages-build.txt; packages packages-runtime.txt; packages packages-test.txt; } | sort -u)
# No package named by hand: every apt-get install takes its names from a list via xargs.
while IFS= read -r line; do
  grep -Eq -- '/tmp/packages-(build|runtime)\.txt \| xargs -r apt-get install -y --no-install-recommends( \\)?$' <<<"$line" ||
    fail "apt-get install not fed by a package list (name packages in scripts/packages-*.txt): $line"
done < <(grep -E 'apt-get install|apt install' "$DOCKERFILE")
ok "Dockerfile installs from packages-build.txt and packages-runtime.txt"

# 3. Configure and build steps match scripts/test.sh's defaults (BUILD_TYPE=${BUILD_TYPE:-X},
#    CDC_WERROR=${CDC_WERROR:-Y}, both passed to its cmake configure line).
test_default() { sed -n "s/^$1=\${$1:-\([^}]*\)}.*/\1/p" "$ROOT/scripts/test.sh" | head -n 1; }
build_type=$(test_default BUILD_TYPE)
werror=$(test_default CDC_WERROR)
test_configure=$(grep -E '^cmake -S' "$ROOT/scripts/test.sh" || true)
[ -n "$build_type" ] && [ -n "$werror" ] || fail "scripts/test.sh sets no default BUILD_TYPE or CDC_WERROR"
grep -Fq -- '-DCMAKE_BUILD_TYPE="$BUILD_TYPE"' <<<"$test_configure" || fail "scripts/test.sh does not configure with \$BUILD_TYPE"
grep -Fq -- '-DCDC_WERROR="$CDC_WERROR"' <<<"$test_configure" || fail "scripts/test.sh does not configure with \$CDC_WERROR"
docker_configure=$(grep -E 'cmake -S' <<<"$build_stage" || true)
[ -n "$docker_configure" ] || fail "build stage has no 'cmake -S' configure step"
grep -Fq -- "-DCMAKE_BUILD_TYPE=$build_type " <<<"$docker_configure" ||
  fail "Dockerfile configure step lacks -DCMAKE_BUILD_TYPE=$build_type (scripts/test.sh's default)"
if [ "$werror" = ON ]; then
  grep -Fq -- "-DCDC_WERROR=ON" <<<"$docker_configure" || fail "Dockerfile configure step lacks -DCDC_WERROR=ON (scripts/test.sh's default)"
else
  grep -Fq -- "-DCDC_WERROR=ON" <<<"$docker_configure" && fail "Dockerfile sets -DCDC_WERROR=ON; scripts/test.sh's default is $werror"
fi
test_flags="-DCMAKE_BUILD_TYPE=$build_type -DCDC_WERROR=$werror"
grep -Eq 'cmake --build build .*--target daisi-cdc-consumer' <<<"$build_stage" || fail "build stage does not build daisi-cdc-consumer"
grep -q 'COPY --from=build /src/build/daisi-cdc-consumer' <<<"$runtime_stage" || fail "runtime stage does not copy the binary"
ok "configure flags match scripts/test.sh: $(echo $test_flags)"

# 3b. The rest of the deployment contract.
grep -q '^COPY config.yaml /etc/daisi-cdc/config.yaml$' <<<"$runtime_stage" || fail "config.yaml is not at /etc/daisi-cdc/config.yaml"
grep -Fq '"--config", "/etc/daisi-cdc/config.yaml"' <<<"$runtime_stage" || fail "ENTRYPOINT does not pass --config /etc/daisi-cdc/config.yaml"
grep -q '^EXPOSE 8080$' <<<"$runtime_stage" || fail "runtime stage does not EXPOSE 8080"
grep -Eq '^USER [a-z]' <<<"$runtime_stage" || fail "runtime stage does not switch to a non-root USER"
grep -A1 '^HEALTHCHECK' <<<"$runtime_stage" | grep -q 'curl .*/healthz' || fail "no HEALTHCHECK calling /healthz with curl"
# The check follows metrics.port from the mounted file as well as from the environment.
grep -A1 '^HEALTHCHECK' <<<"$runtime_stage" | grep -Fq -- '--config /etc/daisi-cdc/config.yaml --metrics-url)' ||
  fail "HEALTHCHECK does not take its URL from daisi-cdc-consumer --config /etc/daisi-cdc/config.yaml --metrics-url"
# No configuration baked into the image: a variable would pin its key over a mounted file.
baked=$(grep -E '^ENV[[:space:]]' "$DOCKERFILE" | grep -E '(NATS_URL|REDIS_ADDRESS|DEDUP_TTL|JS_ACK_WAIT|JS_MAX_DELIVER|LOG_LEVEL|DAISI_CDC_[A-Z_]+)' || true)
[ -z "$baked" ] || fail "the image sets configuration in its environment (it would override a mounted file): $baked"
for var in NATS_URL REDIS_ADDRESS DEDUP_TTL JS_ACK_WAIT JS_MAX_DELIVER LOG_LEVEL; do
  grep -q "^#.*\b$var\b" "$DOCKERFILE" || fail "environment variable $var is not documented in the Dockerfile"
done
for p in libnats3.4 libhiredis0.14 libuv1 libsimdjson14 libyaml-cpp0.7 libmicrohttpd12 ca-certificates curl; do
  packages packages-runtime.txt | grep -qx "$p" || fail "packages-runtime.txt lacks $p"
done
ok "runtime stage: config path, entrypoint, port, user, healthcheck, documented variables"

# 4. apt knows every package (skipped when apt-cache cannot answer, e.g. no package lists).
if command -v apt-cache >/dev/null && apt-cache show dpkg >/dev/null 2>&1; then
  if ! apt-cache show $all_packages >/dev/null 2>&1; then
    for p in $all_packages; do
      apt-cache show "$p" >/dev/null 2>&1 || fail "apt does not know package $p"
    done
  fi
  ok "apt knows all $(wc -w <<<"$all_packages") packages"
fi

# 5. Shared libraries of the binary.
if [ -n "$BINARY" ]; then
  [ -x "$BINARY" ] || { fail "binary $BINARY not found"; }
  runtime=$(packages packages-runtime.txt)
  # Runtime packages and everything they depend on (installed), by name without :arch.
  declare -A depends_of=()
  while IFS=$'\t' read -r name deps; do depends_of["$name"]="$deps"; done < <(
    dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Depends},${Pre-Depends}\n' |
      awk -F'\t' '$1 ~ /^ii/ { print $2 "\t" $3 }')
  closure=" $(echo $runtime) "
  queue="$runtime"
  while [ -n "$queue" ]; do
    next=""
    for p in $queue; do
      deps=$(printf '%s' "${depends_of[$p]:-}" | tr ',|' '\n\n' |
             sed -e 's/(.*)//' -e 's/:.*//' -e 's/[[:space:]]//g' | grep -v '^$' | sort -u || true)
      for d in $deps; do
        [[ "$closure" == *" $d "* ]] && continue
        [ -n "${depends_of[$d]+set}" ] || continue  # not installed (an unused alternative)
        closure+="$d "
        next+=" $d"
      done
    done
    queue="$next"
  done
  base=" libc6 libstdc++6 libgcc-s1 "
  # Owners of every library ldd resolves, in one dpkg -S call (merged /usr: try both spellings).
  declare -A owner=()
  lib_paths=$(ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
  candidates=""
  for path in $lib_paths; do
    real=$(readlink -f "$path")
    candidates+=" $path $real ${path#/usr} /usr${path#/usr} ${real#/usr} /usr${real#/usr}"
  done
  while IFS= read -r line; do
    pkgs="${line%%: /*}"
    file="/${line#*: /}"
    owner["$file"]="${pkgs%%[:,]*}"
  done < <(dpkg -S $(tr ' ' '\n' <<<"$candidates" | grep '^/' | sort -u) 2>/dev/null || true)
  package_of() {  # library path -> package name (without :arch)
    local path="$1" real alt
    real=$(readlink -f "$path")
    for alt in "$path" "$real" "${path#/usr}" "/usr${path#/usr}" "${real#/usr}" "/usr${real#/usr}"; do
      if [ -n "${owner[$alt]:-}" ]; then echo "${owner[$alt]}"; return; fi
    done
    echo ""
  }
  needed=$(readelf -d "$BINARY" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  ldd_out=$(ldd "$BINARY")
  if grep -q 'not found' <<<"$ldd_out"; then fail "ldd: unresolved libraries: $(grep 'not found' <<<"$ldd_out")"; fi
  checked=0
  while read -r name _ path _; do
    [ -n "${path:-}" ] && [[ "$path" == /* ]] || continue
    pkg=$(package_of "$path")
    if [ -z "$pkg" ]; then fail "$name ($path) belongs to no package"; continue; fi
    checked=$((checked + 1))
    if grep -qx "$name" <<<"$needed"; then
      # A direct dependency: must be listed (or the C/C++ runtime).
      [[ "$base" == *" $pkg "* ]] || packages packages-runtime.txt | grep -qx "$pkg" ||
        fail "$BINARY needs $name from package $pkg, which is not in scripts/packages-runtime.txt"
    else
      [[ "$base" == *" $pkg "* || "$closure" == *" $pkg "* ]] ||
        fail "$name from package $pkg is neither in scripts/packages-runtime.txt nor a dependency of its packages"
    fi
  done < <(grep '=>' <<<"$ldd_out")
  ok "$checked shared libraries of $(basename "$BINARY") come from packages-runtime.txt (direct: $(echo $needed))"
fi

if [ "$failures" -ne 0 ]; then
  echo "check-dockerfile: $failures problem(s)" >&2
  exit 1
fi
echo "check-dockerfile: all checks passed"
