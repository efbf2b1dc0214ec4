# Sourced by scripts/format.sh and scripts/lint.sh (not run on its own).

# The first-party C and C++ sources, one path a line (relative to the repository root): the
# files under include src test bench tools fuzz that git tracks or that are new and not ignored;
# without git (an exported tree), every such file on disk.
first_party_sources() {
  local dirs=(include src test bench tools fuzz)
  if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "${dirs[@]}"
  else
    find "${dirs[@]}" -type f
  fi | grep -E '\.(c|cc|cpp|h|hpp)$' | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done
}
