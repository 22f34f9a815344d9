#!/usr/bin/env bash
# Formats every C and C++ file git tracks with the tree's .clang-format; --check changes nothing and
# fails, naming the files, when any file is not formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format > /dev/null; then
  echo "format.sh: clang-format is not installed (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
mapfile -d '' files < <(git ls-files -z -- '*.c' '*.h' '*.cpp' '*.cu')
if [[ "${1:-}" == --check ]]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" > /dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    printf 'format.sh: not formatted (run scripts/format.sh): %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
else
  printf '%s\0' "${files[@]}" | xargs -0 clang-format -i
fi
