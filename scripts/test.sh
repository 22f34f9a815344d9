#!/usr/bin/env bash
# Builds everything and runs every test: once normally, once under ASan/UBSan (UNIFN_SKIP_ASAN=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j1 --timeout 600)
# The sanitizer pass leaves out the fuzzer (it has its own sanitized build) and benchmarks.
if [[ "${UNIFN_SKIP_ASAN:-0}" != 1 ]]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUNIFN_SANITIZE=ON -DUNIFN_CUDA=OFF
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j1 --timeout 900 -E 'fuzz|bench')
fi
