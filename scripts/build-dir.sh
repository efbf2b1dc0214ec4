# Sourced by scripts/test.sh, scripts/run-local.sh and scripts/lint.sh (not run on its own).
#
# usable_build_dir ROOT DIR: prints the build directory to use for the source tree ROOT. DIR
# itself unless its CMakeCache.txt belongs to another source tree (a build directory copied from
# another checkout or machine, which cmake refuses to reuse): then a fresh directory beside it,
# named after ROOT, and a note on stderr. The foreign directory is left as it is.
usable_build_dir() {
  local root=$1 dir=$2 home fresh
  if [ -f "$dir/CMakeCache.txt" ]; then
    home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$dir/CMakeCache.txt")
    if [ -z "$home" ] || [ "$(cd "$home" 2>/dev/null && pwd -P)" != "$(cd "$root" && pwd -P)" ]; then
      fresh="${dir%/}-$(printf '%s' "$(cd "$root" && pwd -P)" | md5sum | cut -c1-8)"
      echo "build directory $dir was configured for ${home:-another source tree}, not $root: using $fresh" >&2
      echo "$fresh"
      return
    fi
  fi
  echo "$dir"
}

# ccache_flags: the compiler-launcher flags for cmake when ccache is installed (CCACHE=0: never).
ccache_flags() {
  if [ "${CCACHE:-auto}" != 0 ] && command -v ccache > /dev/null; then
    echo "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache"
  fi
}
