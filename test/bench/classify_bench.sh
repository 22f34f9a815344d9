#!/usr/bin/env bash
# HTTP rate of image classification: the unifn `classify` function against the torch baseline (test/bench/
# torch_server.py, the same model kept loaded in python3-torch), both posted the same PNG by wrk in the same run.
# Each server must first answer the image's true class (its file name ends in _<class>.png). With a unifnd URL the
# torch server is measured before and after unifnd and the ratio is against the mean of the two (the machines are
# noisy; the spread is printed as torch_drift).
# Prints key=value lines (torch_server_rps, _p50_ms, _p99_ms; with a unifnd URL torch_server_last_*,
# torch_server_rps_mean, torch_drift, unifnd_classify_* and unifnd_over_torch) and a table.
# Usage: test/bench/classify_bench.sh [UNIFN_CLASSIFY_URL] [SECONDS] [CONNECTIONS]
#   UNIFN_CLASSIFY_URL e.g. http://127.0.0.1:8080/function/classify of a running unifnd; empty or "-" measures
#   the torch server only. IMAGE=path.png picks the image (default test/data/fashion/shirt_6.png).
set -euo pipefail
unifn_url=${1:-}
[[ $unifn_url == - ]] && unifn_url=
secs=${2:-10}
conns=${3:-8}
here=$(dirname "$(realpath "$0")")
top=$(realpath "$here/../..")
image=$(realpath "${IMAGE:-$top/test/data/fashion/shirt_6.png}")
work=$(mktemp -d /tmp/unifn-classify-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "classify_bench: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[[ -f $image ]] || { echo "classify_bench: the image $image is missing" >&2; exit 1; }
[[ $(basename "$image") =~ _([0-9])\.png$ ]] ||
  { echo "classify_bench: the image's name $(basename "$image") does not end in _<class>.png" >&2; exit 1; }
want=${BASH_REMATCH[1]}

source "$here/wrk_common.sh"
wrk_script=$work/post.lua
cat > "$wrk_script" <<LUA
local f = assert(io.open("$image", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
LUA

# Waits for a classifier at $1 and checks it answers the image's true class.
wait_classifies() {
  local got class
  for _ in $(seq 300); do
    if got=$(curl -sf --max-time 5 -H 'Content-Type: image/png' --data-binary "@$image" "$1"); then
      class=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["class"])' "$got" 2>/dev/null) ||
        { echo "classify_bench: $1 answered '${got:0:200}', not {\"label\",\"class\",\"confidence\"}" >&2; exit 1; }
      [[ $class == "$want" ]] && { echo "classify_bench: $1 answers $got" >&2; return 0; }
      echo "classify_bench: $1 answered class $class for $(basename "$image"), not $want" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "classify_bench: $1 never answered" >&2; exit 1
}

echo "image=$(basename "$image")"
echo "connections=$conns"
echo "seconds=$secs"
tport=$(free_port)
/usr/bin/python3 "$here/torch_server.py" --port "$tport" >"$work/torch_server.log" 2>&1 & pids+=($!)
turl="http://127.0.0.1:$tport/"
wait_classifies "$turl"
measure torch_server "$turl"
if [[ -n $unifn_url ]]; then
  wait_classifies "$unifn_url"
  measure unifnd_classify "$unifn_url"
  measure torch_server_last "$turl"
  trps=$(awk -v a="${rps[torch_server]}" -v b="${rps[torch_server_last]}" 'BEGIN { printf "%.2f", (a + b) / 2 }')
  echo "torch_server_rps_mean=$trps"
  awk -v a="${rps[torch_server]}" -v b="${rps[torch_server_last]}" 'BEGIN { printf "torch_drift=%.2f\n", b / a }'
  ratio=$(awk -v a="${rps[unifnd_classify]}" -v b="$trps" 'BEGIN { printf "%.2f", a / b }')
  echo "unifnd_over_torch=$ratio"
else
  echo "classify_bench: no unifnd URL given: the torch server only (usage: $0 http://HOST:PORT/function/classify)" >&2
fi

echo
printf '| %-40s | %10s | %8s | %8s |\n' server req/s p50_ms p99_ms
printf '|%s|%s|%s|%s|\n' ------------------------------------------ ------------ ---------- ----------
printf '| %-40s | %10s | %8s | %8s |\n' "torch_server.py (python3-torch, CPU)" "${rps[torch_server]}" \
  "${p50[torch_server]}" "${p99[torch_server]}"
if [[ -n $unifn_url ]]; then
  printf '| %-40s | %10s | %8s | %8s |\n' "unifnd classify (${ratio}x torch)" "${rps[unifnd_classify]}" \
    "${p50[unifnd_classify]}" "${p99[unifnd_classify]}"
  printf '| %-40s | %10s | %8s | %8s |\n' "torch_server.py (last)" "${rps[torch_server_last]}" \
    "${p50[torch_server_last]}" "${p99[torch_server_last]}"
fi
