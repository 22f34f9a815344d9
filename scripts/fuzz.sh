#!/usr/bin/env bash
# Runs the fuzzers for longer than the tests do: each for SECONDS (default 300) from its own corpus
# (kept between runs in BUILD/test/fuzz/corpus-*) and its seeds, one after the other.
#
#   scripts/fuzz.sh [SECONDS] [FUZZER...]     FUZZER: accel guest files http onnx (default: all five)
#
# Environment:
#   UNIFN_BUILD_DIR      the build directory (default: build); configured and built here when needed
#   UNIFN_FUZZ_STRICT=1  fail on the known findings too (test/fuzz/known_findings.txt); by default
#                        each is reported once and the fuzzer goes on looking for others
#   UNIFN_FUZZ_TOLERATE  the tags to tolerate instead (comma-separated; "" for none, "all")
#   UNIFN_FUZZ_JOBS      parallel fuzzing processes per fuzzer (libFuzzer -fork; default 1)
# Findings are written to BUILD/test/fuzz/findings/<fuzzer>-crash-* (or -timeout-, -oom-); reproduce
# one with `BUILD/test/fuzz/fuzz_<name> FILE` (UNIFN_FUZZ_TRACE=1 shows what fuzz_guest and
# fuzz_files did with it). Exits 1 if any fuzzer found something.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
[[ $# -gt 0 ]] && shift
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(accel guest files http onnx)
build=${UNIFN_BUILD_DIR:-build}
jobs=${UNIFN_FUZZ_JOBS:-1}

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
targets=()
for n in "${names[@]}"; do
  case "$n" in
    accel|guest|files|http|onnx) targets+=("fuzz_$n") ;;
    *) echo "fuzz.sh: unknown fuzzer '$n' (accel, guest, files, http, onnx)" >&2; exit 2 ;;
  esac
done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

dir="$build/test/fuzz"
if [[ -z "${UNIFN_FUZZ_TOLERATE+set}" ]]; then
  if [[ "${UNIFN_FUZZ_STRICT:-0}" == 1 ]]; then
    UNIFN_FUZZ_TOLERATE=""
  else
    UNIFN_FUZZ_TOLERATE=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' test/fuzz/known_findings.txt | grep -v '^$' | paste -sd, -)
  fi
fi
export UNIFN_FUZZ_TOLERATE
echo "fuzz.sh: ${secs} s each; tolerated findings: ${UNIFN_FUZZ_TOLERATE:-none}"

mkdir -p "$dir/findings"
status=0
summary=()
for n in "${names[@]}"; do
  f="fuzz_$n"
  case "$n" in
    accel) corpus=corpus; seeds=seeds; extra=() ;;   # the names the fuzz_accel test uses
    http) corpus=corpus-http; seeds=fuzz-seeds/http; extra=(-dict="$PWD/test/fuzz/http.dict") ;;
    onnx) corpus=corpus-onnx; seeds=seeds-onnx; extra=() ;;   # seeds copied at configure time
    *) corpus=corpus-$n; seeds=fuzz-seeds/$n; extra=() ;;
  esac
  mkdir -p "$dir/$corpus"
  before=$(find "$dir/findings" -name "$f-*" ! -name "*.log" | wc -l)
  par=()
  [[ "$jobs" -gt 1 ]] && par=(-fork="$jobs" -ignore_crashes=1)
  echo "== $f: ${secs} s from $corpus and $seeds"
  log="$dir/findings/$f.log"
  set +e
  (cd "$dir" && "./$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
     -artifact_prefix="findings/$f-" "${par[@]}" "${extra[@]}" "$corpus" "$seeds") 2>&1 | tee "$log" |
    grep -E '^(FUZZ FINDING|==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units|stat::new_units_added|Done )' || true
  rc=${PIPESTATUS[0]}
  set -e
  after=$(find "$dir/findings" -name "$f-*" ! -name "*.log" | wc -l)
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [[ $rc -ne 0 || $after -gt $before ]]; then
    status=1
    summary+=("$f: FOUND something (exit $rc), $((after - before)) new file(s) in $dir/findings, log $log")
  else
    summary+=("$f: nothing found in ${runs:-?} runs, corpus $(find "$dir/$corpus" -type f | wc -l) inputs")
  fi
done
echo
printf '%s\n' "${summary[@]}"
exit "$status"
