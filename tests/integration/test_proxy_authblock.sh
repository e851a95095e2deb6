#!/usr/bin/env bash
# Failed logins across proxies (issue 19.3, docs/security.md "Abuse"): the
# simulator answers 401 to wrong passwords; two proxy processes share one
# Redis and count Exchange's 401s per address and per user and address:
#   1. brute force: one user's wrong passwords from one address block that
#      user from that address (auth-block-user, 503 with Retry-After), even
#      with the right password, on both proxies (each learns the block at
#      its first 401 after it at the latest); the block ends on time, and a
#      repeat blocks twice as long;
#   2. spray: one wrong password for many users from one address blocks the
#      address for every user (auth-block-client), but not a device the
#      registry knows, whose failures count apart (auth-block-device);
#   3. metrics and an auth-block sighting for the core's audit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

eg_redis
eg_exsim --auth basic --users 'alice:pw-a,bob:pw-b,carol:pw-c'
cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
abuse:
  credentials:
    window: 1m
    client_failures: 10
    user_failures: 3
    known_device_failures: 4
    block: 5s
    block_max: 20s
    memory: 1m
YAML
eg_proxy 1 -t
eg_proxy 2 -t
metrics() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics"; }
metric() { metrics "$1" | awk -v m="$2" '$1 == m {print $2}'; }

# req PORT USER PASS DEVID ADDR: prints the status; headers in $TMP/h
req() {
  curl -s --max-time 10 -o /dev/null -D "$TMP/h" -w '%{http_code}' -X POST -H 'Content-Length: 0' \
    -H 'MS-ASProtocolVersion: 14.1' -H 'User-Agent: Apple-iPhone/1' -H "X-Forwarded-For: $5" \
    -u "$2:$3" "http://127.0.0.1:$1/Microsoft-Server-ActiveSync?Cmd=Sync&User=$2&DeviceId=$4&DeviceType=iPhone"
}
retry_after() { sed -n 's/^Retry-After: *//Ip' "$TMP/h" | tr -d '\r'; }

# 1. brute force on alice from 192.0.2.10, through both proxies
A=192.0.2.10
got=""
for i in 1 2 3 4 5 6; do
  px=PX$(((i % 2) + 1))
  got="$got $(req "${!px}" alice wrong DEVA1 $A)"
done
echo "alice, wrong password x6:$got"
n401=$(echo "$got" | tr ' ' '\n' | grep -c '^401$' || true)
n503=$(echo "$got" | tr ' ' '\n' | grep -c '^503$' || true)
# three failures block (5 s: the six requests and the checks below fit in
# it even on a loaded machine under ASan); the proxy that did not see the third may forward one more
[ "$n401" -ge 3 ] && [ "$n401" -le 4 ] && [ $((n401 + n503)) = 6 ] ||
  eg_fail "brute force: $got (want 3 or 4 401s, then 503s)"
for px in "$PX1" "$PX2"; do
  [ "$(req "$px" alice pw-a DEVA1 $A)" = 503 ] || eg_fail "alice blocked from $A: the right password passed on $px"
done
ra=$(retry_after)
[ -n "$ra" ] && [ "$ra" -ge 2 ] && [ "$ra" -le 5 ] || eg_fail "block of 5s: Retry-After '$ra'"
cat "$TMP/access1.log" "$TMP/access2.log" | eg_has '"reason":"auth-block-user"' || eg_fail "no auth-block-user in the access log"
# alice from another address, and bob from this one, are not held
[ "$(req "$PX1" alice pw-a DEVA1 192.0.2.11)" = 200 ] || eg_fail "alice from another address was blocked"
[ "$(req "$PX1" bob pw-b DEVB1 $A)" = 200 ] || eg_fail "bob from $A was blocked"
sleep 5.2
[ "$(req "$PX2" alice pw-a DEVA1 $A)" = 200 ] || eg_fail "alice still blocked after the 5s block"
# a repeat: blocked for 10s
for i in 1 2 3 4; do req "$PX1" alice wrong DEVA1 $A >/dev/null; done
[ "$(req "$PX1" alice pw-a DEVA1 $A)" = 503 ] || eg_fail "repeat: not blocked"
ra=$(retry_after)
[ "$ra" -ge 7 ] && [ "$ra" -le 10 ] || eg_fail "repeat: Retry-After '$ra', want 10 (twice the first block)"
[ "$(redis-cli -p "$redis_port" --scan --pattern 'easgate:auth:s:user:*' | head -1 |
  xargs redis-cli -p "$redis_port" get)" = 2 ] || eg_fail "the repeat is not remembered in Redis"

# 2. spray from 192.0.2.20: one wrong password for many users
S=192.0.2.20
redis-cli -p "$redis_port" hset easgate:dev:KNOWNB state allow user bob version 1 updated 1 >/dev/null
for i in $(seq 11); do
  px=PX$(((i % 2) + 1))
  req "${!px}" "user$i" wrong "DEVS$i" $S >/dev/null
done
for px in "$PX1" "$PX2"; do
  [ "$(req "$px" carol pw-c DEVC1 $S)" = 503 ] || eg_fail "spray from $S: carol (new device) was not blocked on $px"
done
cat "$TMP/access1.log" "$TMP/access2.log" | eg_has '"reason":"auth-block-client"' || eg_fail "no auth-block-client in the access log"
# bob's known device from the same address goes on
[ "$(req "$PX1" bob pw-b KNOWNB $S)" = 200 ] || eg_fail "spray: bob's known device was locked out"
# its own failures count apart: four block it
got=""
for i in 1 2 3 4 5 6; do got="$got $(req "$PX1" bob wrong KNOWNB $S)"; done
echo "bob's known device, wrong password x6:$got"
case "$got" in *503*) ;; *) eg_fail "known device: never blocked: $got" ;; esac
cat "$TMP/access1.log" | eg_has '"reason":"auth-block-device"' || eg_fail "no auth-block-device in the access log"

# 3. metrics and the audit sighting
m=$(metrics "$AD1")$(metrics "$AD2")
echo "$m" | grep '^easgate_auth_blocks_total{scope="user"}' | awk '{s += $2} END {exit !(s >= 2)}' ||
  eg_fail "easgate_auth_blocks_total{scope=user}: $(echo "$m" | grep easgate_auth_blocks)"
echo "$m" | grep '^easgate_auth_blocks_total{scope="client"}' | awk '{s += $2} END {exit !(s >= 1)}' ||
  eg_fail "easgate_auth_blocks_total{scope=client}"
echo "$m" | grep '^easgate_auth_failures_total' | awk '{s += $2} END {exit !(s >= 15)}' ||
  eg_fail "easgate_auth_failures_total: $(echo "$m" | grep easgate_auth_failures)"
redis-cli -p "$redis_port" xrange easgate:sightings - + | eg_has '^auth-block$' || eg_fail "no auth-block sighting"
# a clean exit (in the ASan build: no leak, no sanitizer report)
eg_stop_clean proxy1
eg_stop_clean proxy2
eg_pass "failed logins blocked across two proxies"
