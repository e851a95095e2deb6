#!/usr/bin/env bash
# Request budgets across proxies (issue 19.1, docs/security.md "Abuse"):
# two proxy processes (two workers each) share one Redis, and a budget set
# at R requests a second holds for them together at R x T plus the bursts
# (each worker starts with one), within a sync interval's slack:
#   1. one DeviceId hammered through both: budget-device;
#   2. a new DeviceId per request, one user: budget-user;
#   3. a new DeviceId and user per request, one address: budget-client;
# the refusals are 503 with Retry-After and X-MS-ASThrottle: OutOfBudgets,
# logged with their reason and counted in /metrics.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

eg_redis
eg_exsim
BURST=3
cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
abuse:
  budgets:
    device: { per_minute: 600, burst: $BURST }   # 10/s
    user: { per_minute: 1200, burst: $BURST }    # 20/s
    client: { per_minute: 1800, burst: $BURST }  # 30/s
    retry_after: 2s
YAML
eg_proxy 1 -w 2
eg_proxy 2 -w 2
metric() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

WORKERS=4 # two proxies, two workers each: four buckets, four bursts
jget() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
phase() { # MODE RATE: load both proxies for 3 s, check the count
  local mode=$1 rate=$2 res ok el lo hi
  res=$(python3 "$SRC/tests/integration/budget_load.py" 3 "$mode" "$PX1" "$PX2" "$PX1" "$PX2")
  echo "$mode: $res"
  # the counts are in Redis: a hash per second, living three seconds
  redis-cli -p "$redis_port" --scan --pattern 'easgate:bud:*' | eg_has . || eg_fail "no easgate:bud:* keys"
  ok=$(echo "$res" | jget ok)
  el=$(echo "$res" | jget elapsed)
  # R x T, plus up to one burst per worker and a sync interval (0.1 s) of
  # each worker's traffic not yet charged to the others; less a little
  # for the tail of the last second.
  read -r lo hi < <(python3 -c "r=$rate; t=$el; print(int(r*t + $BURST - r*0.3 - 2), int(r*t + $WORKERS*$BURST + $WORKERS*r*0.1 + 2))")
  [ "$ok" -ge "$lo" ] && [ "$ok" -le "$hi" ] ||
    eg_fail "$mode: $ok requests passed in ${el}s, want $lo..$hi (budget $rate/s across two proxies)"
  echo "$res" | eg_has '"throttle": \["OutOfBudgets"\]' || eg_fail "$mode: X-MS-ASThrottle: $res"
  echo "$res" | eg_has '"retry_after": \["2"\]' || eg_fail "$mode: Retry-After: $res"
  echo "$res" | eg_has '"other": 0' || eg_fail "$mode: other answers: $res"
  cat "$TMP/access1.log" "$TMP/access2.log" | eg_has "\"reason\":\"budget-$mode\"" ||
    eg_fail "$mode: no access-log line with reason budget-$mode"
}
phase device 10
phase user 20
phase client 30
for ad in "$AD1" "$AD2"; do
  curl -s --max-time 5 "http://127.0.0.1:$ad/metrics" | grep '^easgate_budget_refused_total' |
    awk '{s += $2} END {exit !(s > 0)}' || eg_fail "no easgate_budget_refused_total on admin $ad"
done
# a clean exit (in the ASan build: no leak, no sanitizer report)
eg_stop_clean proxy1
eg_stop_clean proxy2
eg_pass "budgets hold across two proxies"
