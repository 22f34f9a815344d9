#!/usr/bin/env bash
# HTTP echo: unifnd on every platform this host has (the sandbox always, KVM when a probe VM runs), per-request
# isolation and reuse each, against lighttpd running a static CGI echo, all on loopback in the same run,
# driven by wrk. lighttpd is measured first and last; each unifnd row's ratio is against the mean of those two
# (the machines are noisy; the spread between them is printed as lighttpd_drift).
# Prints key=value lines (unifnd_<platform>_<isolation>_rps, _p50_ms, _p99_ms, _over_lighttpd) and a table.
# Usage: test/bench/http_bench.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
#   SECONDS per measurement (default 10); there are 2 lighttpd runs + 2 per platform, so with KVM the whole
#   script takes about 6 x SECONDS plus a few seconds of start-up. PLATFORMS="sandbox kvm" overrides the probe.
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
conns=${3:-8}
work=$(mktemp -d /tmp/unifn-http-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in wrk lighttpd musl-gcc curl python3; do
  command -v "$tool" >/dev/null || { echo "http_bench: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[[ -x $build/unifnd && -e $build/functions/echo.elf ]] ||
  { echo "http_bench: $build/unifnd or $build/functions/echo.elf is missing" >&2; exit 1; }
here=$(dirname "$(realpath "$0")")
mkdir -p "$work/www"
musl-gcc -static -O2 -o "$work/www/echo.cgi" "$here/cgi_echo.c"
cp "$build/functions/echo.elf" "$work/"
body="hello, unifn"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "text/plain"
LUA

# The platforms: the sandbox always; KVM when it works here, tested the way the daemon would (a probe VM).
if [[ -z ${PLATFORMS:-} ]]; then
  PLATFORMS=sandbox
  if timeout 20 "$build/unifnd" run --platform kvm "$build/functions/hello.elf" </dev/null >/dev/null 2>&1; then
    PLATFORMS+=" kvm"
  else
    echo "http_bench: no KVM here (unifnd run --platform kvm failed); the sandbox only" >&2
  fi
fi

source "$here/wrk_common.sh"
wrk_script=$work/post.lua
wait_up() {
  local got
  for _ in $(seq 100); do
    if got=$(curl -s --max-time 2 -X POST --data-binary "$body" "$1"); then
      [[ $got == "$body" ]] && return 0
      echo "http_bench: $1 answered '${got:0:100}', not the echo of '$body'" >&2; exit 1
    fi
    sleep 0.05
  done
  echo "http_bench: $1 never answered" >&2; exit 1
}

lport=$(free_port)
cat > "$work/lighttpd.conf" <<CONF
server.document-root = "$work/www"
server.port = $lport
server.bind = "127.0.0.1"
server.modules = ("mod_cgi")
cgi.assign = (".cgi" => "")
server.errorlog = "$work/lighttpd.err"
server.max-keep-alive-requests = 1000
CONF
lighttpd -D -f "$work/lighttpd.conf" >/dev/null 2>&1 & pids+=($!)
lurl="http://127.0.0.1:$lport/echo.cgi"
wait_up "$lurl"

# Starts unifnd on a platform with the echo function at an isolation; sets url. Checks /system/info names
# the platform asked for.
run_unifnd() {
  local platform=$1 isolation=$2 port dir=$work/$1-$2 got
  port=$(free_port)
  mkdir -p "$dir/fns"
  printf 'name: echo\nimage: %s\nisolation: %s\nmin_warm: 2\nmax_instances: 2\n' "$work/echo.elf" "$isolation" \
    > "$dir/fns/echo.yaml"
  "$build/unifnd" --platform "$platform" --listen "127.0.0.1:$port" --functions-dir "$dir/fns" --state-dir "$dir/state" \
    >/dev/null 2>"$dir/unifnd.log" & pids+=($!)
  url="http://127.0.0.1:$port/function/echo"
  wait_up "$url"
  got=$(curl -s "http://127.0.0.1:$port/system/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["platform"])')
  [[ $got == "$platform" ]] || { echo "http_bench: unifnd --platform $platform reports platform '$got'" >&2; exit 1; }
}

echo "connections=$conns"
echo "seconds=$secs"
echo "platforms=${PLATFORMS// /,}"
measure lighttpd_cgi_first "$lurl"
rows=()
for platform in $PLATFORMS; do
  for isolation in per-request reuse; do
    run_unifnd "$platform" "$isolation"
    name=unifnd_${platform}_${isolation//-/_}
    measure "$name" "$url"
    rows+=("$platform:$isolation:$name")
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  done
done
measure lighttpd_cgi_last "$lurl"
lrps=$(awk -v a="${rps[lighttpd_cgi_first]}" -v b="${rps[lighttpd_cgi_last]}" 'BEGIN { printf "%.2f", (a + b) / 2 }')
echo "lighttpd_cgi_rps_mean=$lrps"
awk -v a="${rps[lighttpd_cgi_first]}" -v b="${rps[lighttpd_cgi_last]}" 'BEGIN { printf "lighttpd_drift=%.2f\n", b / a }'
declare -A ratio
for row in "${rows[@]}"; do
  IFS=: read -r platform isolation name <<<"$row"
  ratio[$name]=$(awk -v a="${rps[$name]}" -v b="$lrps" 'BEGIN { printf "%.2f", a / b }')
  echo "${name}_over_lighttpd=${ratio[$name]}"
done
# Two platforms: how the sandbox compares with KVM in this same run.
if [[ -n ${rps[unifnd_kvm_reuse]:-} ]]; then
  for iso in per_request reuse; do
    awk -v a="${rps[unifnd_sandbox_$iso]}" -v b="${rps[unifnd_kvm_$iso]}" -v i="$iso" 'BEGIN { printf "sandbox_over_kvm_%s=%.2f\n", i, a / b }'
  done
fi

echo
printf '| %-8s | %-38s | %10s | %8s | %8s | %-12s |\n' platform server req/s p50_ms p99_ms vs_lighttpd
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- ---------------------------------------- ------------ ---------- ---------- --------------
printf '| %-8s | %-38s | %10s | %8s | %8s | %-12s |\n' host "lighttpd CGI echo (first)" "${rps[lighttpd_cgi_first]}" \
  "${p50[lighttpd_cgi_first]}" "${p99[lighttpd_cgi_first]}" ""
for row in "${rows[@]}"; do
  IFS=: read -r platform isolation name <<<"$row"
  printf '| %-8s | %-38s | %10s | %8s | %8s | %-12s |\n' "$platform" "unifnd echo, $isolation" "${rps[$name]}" \
    "${p50[$name]}" "${p99[$name]}" "${ratio[$name]}x"
done
printf '| %-8s | %-38s | %10s | %8s | %8s | %-12s |\n' host "lighttpd CGI echo (last)" "${rps[lighttpd_cgi_last]}" \
  "${p50[lighttpd_cgi_last]}" "${p99[lighttpd_cgi_last]}" ""
