#!/usr/bin/env bash
# Checks the formatting, builds everything and runs every test: once normally, once under ASan/UBSan (UNIFN_SKIP_ASAN=1 skips it),
# then the pool stress test under TSan (UNIFN_SKIP_TSAN=1 skips it).
# Tests that boot guests run on each platform (sandbox, kvm); one the host lacks reports skipped with
# the reason. Ends with the counts per platform and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
logs=()
status=0
# Every C and C++ file in .clang-format's style (scripts/format.sh formats them).
scripts/format.sh --check || status=1
# ctest takes a ';' in a Catch2 test name as a list separator, and the test then never runs.
if grep -rnE 'TEST_CASE\("[^"]*;' test; then
  echo "test.sh: the test names above hold ';', which ctest cannot run: use ',' or 'and'" >&2
  status=1
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j1 --timeout 600) 2>&1 | tee build/ctest.log || status=1
logs+=(build/ctest.log)
# The sanitizer pass leaves out the fuzzer (it has its own sanitized build) and benchmarks.
if [[ "${UNIFN_SKIP_ASAN:-0}" != 1 ]]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUNIFN_SANITIZE=ON -DUNIFN_CUDA=OFF
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j1 --timeout 900 -E 'fuzz|bench') 2>&1 | tee build-asan/ctest.log || status=1
  logs+=(build-asan/ctest.log)
fi
# The ThreadSanitizer pass: only the pool stress test (calls, drains, reloads and /metrics scrapes
# at once on emulated guests) and the daemon core it links (UNIFN_SKIP_TSAN=1 skips it).
if [[ "${UNIFN_SKIP_TSAN:-0}" != 1 ]]; then
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNIFN_TSAN=ON -DUNIFN_CUDA=OFF
  cmake --build build-tsan -j"$jobs" --target test_pool_stress
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
     ctest --output-on-failure -j1 --timeout 900 -R 'pool stress') 2>&1 | tee build-tsan/ctest.log || status=1
  logs+=(build-tsan/ctest.log)
fi
python3 scripts/test_summary.py "${logs[@]}" || status=1
exit "$status"
