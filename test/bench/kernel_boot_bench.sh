#!/usr/bin/env bash
# Benchmark: `unifnd run` of the PVH test kernel against QEMU microvm booting the same kernel, whole processes.
#
# usage: test/bench/kernel_boot_bench.sh [-n RUNS] [-b BUILD_DIR]
#   RUNS       runs of each command (default 30, or $N)
#   BUILD_DIR  the CMake build folder holding unifnd and test/kernels/pvh.elf (default build, or $BUILD_DIR)
# Prints key=value lines: unifnd_run_ms_p50, unifnd_run_ms_p99, qemu_microvm_ms_p50, qemu_microvm_ms_p99,
# ratio_qemu_over_unifnd (QEMU p50 / unifnd p50), plus what was run. Both commands are checked first:
# each must print the kernel's greeting and exit with isa-debug-exit's status 33.
set -euo pipefail

runs=${N:-30}
build=${BUILD_DIR:-}
while getopts "n:b:h" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) build=$OPTARG ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${build:-$repo/build}
[[ -d $build ]] || { echo "kernel_boot_bench: no build folder $build (use -b BUILD_DIR)" >&2; exit 1; }
build=$(cd "$build" && pwd)
unifnd=$build/unifnd
kernel=$build/test/kernels/pvh.elf
qemu=${QEMU:-qemu-system-x86_64}
expect_status=33  # the kernel writes 0x10 to port 0xF4: (0x10 << 1) | 1

for f in "$unifnd" "$kernel"; do
  [[ -e $f ]] || { echo "kernel_boot_bench: $f is missing (build unifnd and unifn_test_kernels first)" >&2; exit 1; }
done
command -v "$qemu" >/dev/null || { echo "kernel_boot_bench: $qemu is not installed" >&2; exit 1; }
[[ -w /dev/kvm ]] || { echo "kernel_boot_bench: /dev/kvm is not usable" >&2; exit 1; }

unifnd_cmd=("$unifnd" run "$kernel")
# microvm has an ISA bus: isa-serial is on by default and isa-debug-exit plugs in. QEMU's device
# listens on 0x501 unless told otherwise; our kernel (like most written for QEMU) uses 0xF4.
qemu_cmd=("$qemu" -M microvm -accel kvm -nodefaults -no-user-config -nographic -serial stdio
          -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$kernel")

# Both must really boot the kernel and exit the same way before their times mean anything.
check() {
  local name=$1; shift
  local out status=0
  out=$("$@" </dev/null 2>/dev/null) || status=$?
  if [[ $status -ne $expect_status || $out != *"hello from pvh"* ]]; then
    echo "kernel_boot_bench: $name did not boot $kernel (exit status $status, expected $expect_status; output: ${out:0:200})" >&2
    exit 1
  fi
}
check unifnd "${unifnd_cmd[@]}"
check qemu "${qemu_cmd[@]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One time per line, in milliseconds, for each command.
if command -v hyperfine >/dev/null; then
  tool=hyperfine
  quote() { local s="" a; for a in "$@"; do s+=$(printf '%q ' "$a"); done; echo "${s% }"; }
  # -N: no shell in between; -i: the status was checked above (a kernel exit is never 0 here).
  hyperfine -N -i --style none --warmup 3 --runs "$runs" --export-json "$tmp/times.json" \
    -n unifnd "$(quote "${unifnd_cmd[@]}")" -n qemu "$(quote "${qemu_cmd[@]}")" >/dev/null 2>&1
  python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
for r in json.load(open(f"{d}/times.json"))["results"]:
    with open(f"{d}/{r['command']}.ms", "w") as f:
        f.writelines(f"{t * 1000:.4f}\n" for t in r["times"])
PY
else
  tool=bash
  for name in unifnd qemu; do
    if [[ $name == unifnd ]]; then cmd=("${unifnd_cmd[@]}"); else cmd=("${qemu_cmd[@]}"); fi
    for ((i = 0; i < runs + 3; i++)); do
      t0=$(date +%s%N)
      "${cmd[@]}" </dev/null >/dev/null 2>&1 || true
      t1=$(date +%s%N)
      ((i < 3)) || echo "$(((t1 - t0) / 1000)) 1000" | awk '{printf "%.4f\n", $1 / $2}' >>"$tmp/$name.ms"
    done
  done
fi

# Nearest-rank percentile of a file of numbers.
pct() { sort -g "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int((p * NR + 99) / 100); if (i < 1) i = 1; printf "%.3f", v[i]}'; }
u50=$(pct "$tmp/unifnd.ms" 50); u99=$(pct "$tmp/unifnd.ms" 99)
q50=$(pct "$tmp/qemu.ms" 50); q99=$(pct "$tmp/qemu.ms" 99)

echo "kernel=$kernel"
echo "runs=$runs"
echo "tool=$tool"
echo "unifnd_run_ms_p50=$u50"
echo "unifnd_run_ms_p99=$u99"
echo "qemu_microvm_ms_p50=$q50"
echo "qemu_microvm_ms_p99=$q99"
echo "ratio_qemu_over_unifnd=$(awk -v q="$q50" -v u="$u50" 'BEGIN {printf "%.1f", q / u}')"
