#!/usr/bin/env bash
# Autoblock thresholds hold behind a load balancer (issue 19.2 and 19.5):
# two proxy processes share one Redis, and a device whose requests alternate
# between them is reported when every proxy's count together reaches the
# limit, once, by the proxy whose addition reached it (each proxy alone saw
# half). Counts are kept in easgate:ab:RULE:DEVICEID for the rule's window.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

eg_redis
eg_exsim --auth basic --users 'erin:pw'
cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
abuse:
  autoblock:
    command_frequency: { limit: 6, window: 1m, block: 2h }
YAML
eg_proxy 1
eg_proxy 2
req() { # PORT
  curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Length: 0' \
    -H 'MS-ASProtocolVersion: 14.1' -H 'User-Agent: Apple-iPhone/1' -u erin:pw \
    "http://127.0.0.1:$1/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=erin&DeviceId=SHARED1&DeviceType=iPhone"
}
reports() { redis-cli -p "$redis_port" --raw xrange easgate:sightings - + | grep -c '^autoblock$' || true; }

# 5 requests, alternating: below the limit, nothing reported
for i in 1 2 3 4 5; do
  px=PX$(((i % 2) + 1))
  [ "$(req "${!px}")" = 200 ] || eg_fail "request $i was not forwarded"
done
sleep 0.5
[ "$(reports)" = 0 ] || eg_fail "reported below the limit ($(reports))"
# the 6th, on whichever proxy: every proxy's count reaches 6
[ "$(req "$PX1")" = 200 ] || eg_fail "request 6 was not forwarded"
for _ in $(seq 30); do [ "$(reports)" -ge 1 ] && break; sleep 0.1; done
[ "$(reports)" = 1 ] || eg_fail "want one report when the proxies' count together reached 6, got $(reports)"
redis-cli -p "$redis_port" --raw xrange easgate:sightings - + | awk 'p {print; p = 0} /^count$/ {p = 1}' |
  eg_has '^6$' || eg_fail "the report does not carry the shared count"
ttl=$(redis-cli -p "$redis_port" PTTL easgate:ab:CommandFrequency:SHARED1)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 60000 ] || eg_fail "the shared count's expiry is $ttl ms, want the window (60000)"
eg_pass "a device spread over two proxies is reported when their count together reaches the limit"

# 12 more within the window: reported once per window, by nobody again
for i in $(seq 12); do
  px=PX$(((i % 2) + 1))
  req "${!px}" >/dev/null
done
sleep 0.5
[ "$(reports)" = 1 ] || eg_fail "reported again within the window ($(reports))"
[ "$(redis-cli -p "$redis_port" GET easgate:ab:CommandFrequency:SHARED1)" = 18 ] ||
  eg_fail "the shared count is $(redis-cli -p "$redis_port" GET easgate:ab:CommandFrequency:SHARED1), want 18"
eg_pass "once per window across proxies"
eg_stop_clean proxy1
eg_stop_clean proxy2
