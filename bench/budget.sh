#!/usr/bin/env bash
# bench/budget.sh BUILD_DIR: what the request budgets cost per request
# (issue 19.5). Two easgate processes, same configuration and Redis, one
# with budgets on (limits far above the load, so every request is counted
# and none refused: device, user and client buckets, the 100 ms pipeline to
# Redis) and one with every budget and autoblock rule off; the same exsim
# behind both. easload sends keep-alive Sync POSTs (plain HTTP both legs,
# so the budget's share is not hidden behind TLS) at C connections, rounds
# alternating on/off so drift on a shared machine hits both. Prints
# requests/s (median of the rounds) for each, their ratio, p99, the proxy's
# CPU time per request (user + system, from /proc: on a shared machine the
# steadier figure), and the Redis commands the budgets sent per request
# (easgate_redis_abuse_commands_total).
#
# Knobs: BENCH_QUICK (1: 2 rounds of 3 s), BENCH_DURATION (s, 10),
# BENCH_RUNS (rounds, 3), BENCH_BUDGET_CONNS ("64 256"), BENCH_DEVICES (1000),
# BENCH_WORKERS (nproc). Stops only what it started, by pid.
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/budget.sh BUILD_DIR}" && pwd)
QUICK=${BENCH_QUICK:-0}
DUR=${BENCH_DURATION:-$([ "$QUICK" = 1 ] && echo 3 || echo 10)}
RUNS=${BENCH_RUNS:-$([ "$QUICK" = 1 ] && echo 2 || echo 3)}
CONNS=${BENCH_BUDGET_CONNS:-64 256}
DEVICES=${BENCH_DEVICES:-1000}
WORKERS=${BENCH_WORKERS:-$(nproc)}
for t in easgate exsim easload; do [ -x "$BUILD/$t" ] || { echo "no $BUILD/$t"; exit 1; }; done
command -v redis-server >/dev/null || { echo "no redis-server"; exit 1; }

TMP=$(mktemp -d /tmp/easgate-budget.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened"; exit 1; }

RP=$(port) XP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
"$BUILD/exsim" --listen "127.0.0.1:$XP" >"$TMP/exsim.log" 2>&1 &
PIDS+=($!)
wait_port "$RP"
wait_port "$XP"

cat >"$TMP/on.yaml" <<YAML
unknown_devices: allow
abuse:
  budgets:
    device: { per_minute: 1000000, burst: 10000000 }
    user: { per_minute: 1000000, burst: 10000000 }
    client: { per_minute: 1000000, burst: 10000000 }
YAML
cat >"$TMP/off.yaml" <<YAML
unknown_devices: allow
abuse:
  budgets:
    device: { per_minute: 0 }
    user: { per_minute: 0 }
    client: { per_minute: 0 }
YAML
declare -A PX AD PID
for mode in on off; do
  PX[$mode]=$(port) AD[$mode]=$(port)
  cat >"$TMP/$mode-easgate.yaml" <<YAML
proxy:
  workers: $WORKERS
  admin_listen: 127.0.0.1:${AD[$mode]}
  instances:
    - name: b
      listen: 127.0.0.1:${PX[$mode]}
      upstream: { url: "http://127.0.0.1:$XP" }
policy: $TMP/$mode.yaml
log: { access: "off", error: "$TMP/$mode-error.log", level: warn }
redis:
  url: redis://127.0.0.1:$RP/0
YAML
  "$BUILD/easgate" proxy -c "$TMP/$mode-easgate.yaml" &
  PIDS+=($!)
  PID[$mode]=$!
  wait_port "${PX[$mode]}"
done
sleep 1
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {s += $2} END {print s + 0}'; }
# CPU time (user + system) of a process, in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
requests() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^easgate_requests_total/ {s += $2} END {print s + 0}'; }

printf '%-6s %-4s %10s %10s %10s\n' conns mode req/s p99_us cpu_us/req
for c in $CONNS; do
  for mode in on off; do : >"$TMP/rps-$c-$mode"; done
  for r in $(seq "$RUNS"); do
    for mode in on off; do
      ops0=$(metric "${AD[$mode]}" easgate_redis_abuse_commands_total)
      cpu0=$(cpu "${PID[$mode]}")
      req0=$(requests "${AD[$mode]}")
      "$BUILD/easload" --url "http://127.0.0.1:${PX[$mode]}" --quiet --connections "$c" \
        --devices "$DEVICES" --mix sync=1 --duration "$DUR" --json "$TMP/r.json" >/dev/null
      ops=$(($(metric "${AD[$mode]}" easgate_redis_abuse_commands_total) - ops0))
      req=$(($(requests "${AD[$mode]}") - req0))
      ticks=$(($(cpu "${PID[$mode]}") - cpu0))
      python3 - "$TMP/r.json" "$ops" "$req" "$ticks" "$(getconf CLK_TCK)" >>"$TMP/rps-$c-$mode" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ops, req, ticks, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(j["rps"], j["p99_us"], ops / req if req else 0, ticks / hz * 1e6 / req if req else 0)
PY
      tail -1 "$TMP/rps-$c-$mode" | awk -v c="$c" -v m="$mode" '{printf "%-6s %-4s %10.0f %10d %10.2f  (round)\n", c, m, $1, $2, $4}'
    done
  done
done
echo
echo "median of $RUNS rounds of ${DUR}s, $WORKERS workers, $DEVICES devices, Sync only, plain HTTP:"
for c in $CONNS; do
  python3 - "$c" "$TMP/rps-$c-on" "$TMP/rps-$c-off" <<'PY'
import statistics, sys
c = sys.argv[1]
on = [list(map(float, l.split())) for l in open(sys.argv[2])]
off = [list(map(float, l.split())) for l in open(sys.argv[3])]
med = lambda rows, i: statistics.median(r[i] for r in rows)
print("c%s: budgets on %.0f req/s (p99 %.0f us, %.2f us CPU/request), off %.0f req/s (p99 %.0f us, "
      "%.2f us CPU/request): req/s on/off %.3f, CPU on/off %.3f; Redis commands per request with "
      "budgets on %.4f" % (c, med(on, 0), med(on, 1), med(on, 3), med(off, 0), med(off, 1),
                           med(off, 3), med(on, 0) / med(off, 0), med(on, 3) / med(off, 3),
                           med(on, 2)))
PY
done
