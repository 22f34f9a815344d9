#!/usr/bin/env bash
# Benchmark: whole-process start-to-answer of a static hello, in the same run, with hyperfine:
#   unifnd run --platform sandbox build/functions/hello.elf --input FILE
# against gVisor with its ptrace platform running a static musl hello that does the same (reads FILE,
# prints "Hello, <contents>!"):
#   runsc --rootless --network=none --platform=ptrace --ignore-cgroups do HELLO FILE
# and, where KVM works (a probe `unifnd run --platform kvm` exits 0), unifnd run --platform kvm as well.
#
# usage: test/bench/sandbox_bench.sh [-n RUNS] [-b BUILD_DIR]
#   RUNS       hyperfine runs of each command after 3 warm-ups (default 30, or $N); about 0.2 s per run
#              of runsc and well under that for unifnd, so the default takes 10 to 20 s
#   BUILD_DIR  the CMake build folder holding unifnd and functions/hello.elf (default build, or $BUILD_DIR)
#   PLATFORMS="sandbox" skips the KVM probe; RUNSC_KVM=1 also times runsc --platform=kvm (it hangs on a PVM
#   /dev/kvm, so it is off by default and bounded by a 20 s check).
# Prints key=value lines: unifnd_sandbox_ms_p50/_p99, runsc_ptrace_ms_p50/_p99, runsc_over_unifnd_sandbox
# (runsc p50 / unifnd sandbox p50; the target is 10 or more), and with KVM unifnd_kvm_ms_p50/_p99,
# runsc_over_unifnd_kvm, unifnd_sandbox_over_kvm. Every command's answer is checked before it is timed.
set -euo pipefail

runs=${N:-30}
build=${BUILD_DIR:-}
while getopts "n:b:h" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) build=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${build:-$repo/build}
[[ -d $build ]] || { echo "sandbox_bench: no build folder $build (use -b BUILD_DIR)" >&2; exit 1; }
build=$(cd "$build" && pwd)
unifnd=$build/unifnd
image=$build/functions/hello.elf
for f in "$unifnd" "$image"; do
  [[ -e $f ]] || { echo "sandbox_bench: $f is missing (build unifnd and the functions first)" >&2; exit 1; }
done
for tool in runsc hyperfine musl-gcc python3; do
  command -v "$tool" >/dev/null || { echo "sandbox_bench: $tool is not installed" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/unifn-sandbox-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
printf 'unifn' >"$tmp/input"
expect="Hello, unifn!"

# The peer's guest: the same greeting as functions/examples/hello.c, from a file named on the command line.
cat >"$tmp/hello.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  static char buf[4096];
  ssize_t n = 0;
  if (argc > 1) {
    int fd = open(argv[1], O_RDONLY);
    if (fd >= 0) { n = read(fd, buf, sizeof buf); close(fd); }
  }
  if (n > 0) printf("Hello, %.*s!\n", (int)n, buf); else printf("Hello, world!\n");
  return 0;
}
C
musl-gcc -static -O2 -o "$tmp/hello" "$tmp/hello.c"

# runsc's flags, as root on this host:
#   --rootless         the brief's command line; as root it changes nothing (runsc runs with the caps it has,
#                      no user namespace of its own), and it lets the script run unprivileged too.
#   --network=none     no netstack or veth set-up: the hello needs none, and neither does unifnd's guest.
#   --platform=ptrace  gVisor's ptrace platform, the peer of unifnd's ptrace sandbox (it is also the default).
#   --ignore-cgroups   as root, runsc otherwise creates and then removes a cgroup in every v1 controller on
#                      each run (about 30 ms here), which unifnd does not do per guest; it also fails on hosts
#                      whose cgroupfs is read-only. Leaving it out only makes runsc slower.
# `do` runs the command in a sandbox over the host's root, read-only with a tmpfs overlay, so the hello and its
# input are reachable at their host paths. Its stdout must be a pipe or /dev/null: with a regular file there,
# the sandbox writes at its own offset and overwrites what the file already holds.
runsc_flags=(--rootless --network=none --platform=ptrace --ignore-cgroups)

quote() { local s="" a; for a in "$@"; do s+=$(printf '%q ' "$a"); done; echo "${s% }"; }
names=() cmds=()
add() { names+=("$1"); shift; cmds+=("$(quote "$@")"); }

# Each command must answer the greeting and exit 0 before its times mean anything.
check() {
  local name=$1; shift
  local out status=0
  out=$(timeout 20 "$@" </dev/null 2>"$tmp/$name.err") || status=$?
  if [[ $status -ne 0 || $out != "$expect" ]]; then
    echo "sandbox_bench: $name did not answer '$expect' (exit status $status; output: '${out:0:200}'; " \
         "stderr: '$(head -c 300 "$tmp/$name.err")')" >&2
    return 1
  fi
}

platforms=${PLATFORMS:-}
if [[ -z $platforms ]]; then
  platforms=sandbox
  if timeout 20 "$unifnd" run --platform kvm "$image" </dev/null >/dev/null 2>&1; then
    platforms+=" kvm"
  else
    echo "sandbox_bench: no KVM here (unifnd run --platform kvm failed); the sandbox only" >&2
  fi
fi
for p in $platforms; do
  cmd=("$unifnd" run --platform "$p" "$image" --input "$tmp/input")
  check "unifnd_$p" "${cmd[@]}" || exit 1
  add "unifnd_$p" "${cmd[@]}"
done
cmd=(runsc "${runsc_flags[@]}" "do" "$tmp/hello" "$tmp/input")
check runsc_ptrace "${cmd[@]}" || exit 1
add runsc_ptrace "${cmd[@]}"
if [[ ${RUNSC_KVM:-0} == 1 ]]; then
  cmd=(runsc --rootless --network=none --platform=kvm --ignore-cgroups "do" "$tmp/hello" "$tmp/input")
  if check runsc_kvm "${cmd[@]}"; then add runsc_kvm "${cmd[@]}"; else runsc_kvm_note="runsc_kvm=did not answer within 20 s"; fi
fi

# -N: no shell in between (the figures are the processes themselves); stdout goes to /dev/null.
hargs=()
for i in "${!names[@]}"; do hargs+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$tmp/times.json" "${hargs[@]}" >/dev/null

echo "runs=$runs"
echo "platforms=${platforms// /,}"
echo "runsc=$(runsc --version 2>/dev/null | head -1)"
echo "runsc_flags=${runsc_flags[*]}"
[[ -z ${runsc_kvm_note:-} ]] || echo "$runsc_kvm_note"
python3 - "$tmp/times.json" <<'PY'
import json, math, statistics, sys
res = {r["command"]: sorted(t * 1000 for t in r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
def pct(v, p):  # nearest rank
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]
p50 = {}
for name, v in res.items():
    p50[name] = statistics.median(v)
    print(f"{name}_ms_p50={p50[name]:.3f}")
    print(f"{name}_ms_p99={pct(v, 99):.3f}")
def ratio(key, a, b):
    if a in p50 and b in p50:
        print(f"{key}={p50[a] / p50[b]:.1f}")
ratio("runsc_over_unifnd_sandbox", "runsc_ptrace", "unifnd_sandbox")
ratio("runsc_over_unifnd_kvm", "runsc_ptrace", "unifnd_kvm")
ratio("runsc_kvm_over_unifnd_kvm", "runsc_kvm", "unifnd_kvm")
ratio("unifnd_sandbox_over_kvm", "unifnd_sandbox", "unifnd_kvm")
PY
