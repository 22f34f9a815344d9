# Shared by the HTTP benchmarks in test/bench/ (sourced, not run): a free loopback port, wrk's latencies in
# milliseconds, and measure, which runs wrk and records its figures.
# measure reads: secs, conns (wrk's duration and connections) and wrk_script (the Lua script wrk runs).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); print v } else { sub(/s/,"",v); print v*1000 } }'; }

# wrk's summary -> NAME_rps, NAME_p50_ms, NAME_p99_ms (and NAME_non2xx, NAME_socket_errors when any); the
# figures are also kept in rps[NAME], p50[NAME], p99[NAME].
declare -A rps p50 p99
measure() {
  local name=$1 url=$2 out errs sock
  out=$(timeout $((secs + 30)) wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s --latency -s "$wrk_script" "$url")
  rps[$name]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50[$name]=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99[$name]=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  sock=$(awk '/Socket errors/ {sub(/^ *Socket errors: */, ""); print}' <<<"$out")
  echo "${name}_rps=${rps[$name]}"
  echo "${name}_p50_ms=${p50[$name]}"
  echo "${name}_p99_ms=${p99[$name]}"
  [[ -z $errs ]] || echo "${name}_non2xx=$errs"
  [[ -z $sock ]] || echo "${name}_socket_errors=$sock"
}
