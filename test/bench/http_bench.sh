#!/usr/bin/env bash
# HTTP echo: unifnd (per-request isolation, then reuse) against lighttpd running a static CGI echo,
# all on loopback in the same run, driven by wrk. Prints key=value lines and the ratios.
# Usage: test/bench/http_bench.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
conns=${3:-8}
work=$(mktemp -d /tmp/unifn-http-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in wrk lighttpd musl-gcc curl; do
  command -v "$tool" >/dev/null || { echo "http_bench: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
here=$(dirname "$(realpath "$0")")
mkdir -p "$work/www" "$work/fns"
musl-gcc -static -O2 -o "$work/www/echo.cgi" "$here/cgi_echo.c"
cp "$build/functions/echo.elf" "$work/"
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "hello, unifn"
wrk.headers["Content-Type"] = "text/plain"
LUA

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null -X POST --data-binary x "$1" && return 0; sleep 0.05; done; echo "http_bench: $1 never answered" >&2; exit 1; }

# wrk's summary -> req/s, p50 and p99 in ms.
measure() {
  local name=$1 url=$2 out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "$url")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); print v } else { sub(/s/,"",v); print v*1000 } }'; }
  echo "${name}_rps=$rps"
  echo "${name}_p50_ms=$(to_ms "$p50")"
  echo "${name}_p99_ms=$(to_ms "$p99")"
  [[ -z "$errs" ]] || echo "${name}_non2xx=$errs"
  eval "${name}_rps_value=$rps"
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
wait_up "http://127.0.0.1:$lport/echo.cgi"

# Sets url to the echo function of a fresh unifnd with the given isolation.
run_unifnd() {
  local isolation=$1 port
  port=$(free_port)
  mkdir -p "$work/fns-$isolation"
  printf 'name: echo\nimage: %s\nisolation: %s\nmin_warm: 2\nmax_instances: 2\n' "$work/echo.elf" "$isolation" \
    > "$work/fns-$isolation/echo.yaml"
  "$build/unifnd" --listen "127.0.0.1:$port" --functions-dir "$work/fns-$isolation" --state-dir "$work/state" \
    >/dev/null 2>"$work/unifnd-$isolation.log" & pids+=($!)
  url="http://127.0.0.1:$port/function/echo"
  wait_up "$url"
}

echo "connections=$conns"
echo "seconds=$secs"
measure lighttpd_cgi "http://127.0.0.1:$lport/echo.cgi"
run_unifnd per-request
measure unifnd_per_request "$url"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
run_unifnd reuse
measure unifnd_reuse "$url"
awk -v a="$unifnd_per_request_rps_value" -v b="$lighttpd_cgi_rps_value" 'BEGIN { printf "per_request_over_lighttpd=%.2f\n", a/b }'
awk -v a="$unifnd_reuse_rps_value" -v b="$lighttpd_cgi_rps_value" 'BEGIN { printf "reuse_over_lighttpd=%.2f\n", a/b }'
