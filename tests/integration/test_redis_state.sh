#!/usr/bin/env bash
# Device state from Redis, end to end: a real redis-server, the Exchange
# simulator and the proxy. The test plays the management core with redis-cli.
#   - an allowed device passes; a device nobody knows follows unknown_devices;
#   - the core blocks it (HSET + PUBLISH in MULTI/EXEC): the next request is
#     blocked within 1 s, on every worker;
#   - a device bound to alice, presented by bob: blocked (user-mismatch);
#   - a held Ping is cut within 1 s of the block;
#   - Redis killed: a known allowed device still passes; after max_stale (8 s)
#     it is blocked (state-stale); Redis back: it passes again;
#   - an unknown device shows up in the easgate:sightings stream.
# Skips (77) until the proxy exports easgate_redis_* metrics (state store wired).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

rc() { redis-cli -p "$redis_port" "$@" >/dev/null; }
eg_exsim --ping-cap 60

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
user_agents: { allow: [], block: [] }
EOF
eg_stack proxy - <<EOF
  max_stale: 8s
  lookup_timeout: 500ms # a loaded machine answers slowly; this test is not about the timeout
  sighting_interval: 1h
EOF

metrics() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }
if ! metrics | eg_has '^easgate_redis_connected'; then
  echo "the proxy does not report easgate_redis_* metrics: state store not wired yet"
  exit 77
fi
for _ in $(seq 50); do
  [ "$(metrics | awk '/^easgate_redis_connected /{print $2}')" = 2 ] && break
  sleep 0.1
done
[ "$(metrics | awk '/^easgate_redis_connected /{print $2}')" = 2 ] ||
  eg_fail "both workers should be connected to Redis"

EAS=/Microsoft-Server-ActiveSync
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
# send CMD DEVICE USER: sets $code (HTTP status) and $fwd (1 if Exchange saw it)
send() {
  curl -s --max-time 10 -D "$TMP/h" -o "$TMP/b" -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=$1&User=$3&DeviceId=$2&DeviceType=iPhone" || true
  code=$(grep '^HTTP/' "$TMP/h" | tail -1 | awk '{print $2}')
  fwd=0; grep -qi '^X-Exsim-Cmd:' "$TMP/h" && fwd=1
  return 0
}
# passes DEVICE USER / blocked DEVICE USER: every worker agrees (several tries)
passes() { for _ in 1 2 3 4; do send FolderSync "$1" "$2"; [ $fwd = 1 ] || return 1; done; }
blocked() { for _ in 1 2 3 4; do send FolderSync "$1" "$2"; [ $fwd = 0 ] || return 1; done; }
core_set() { # DEVICE STATE USER VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "$3" reason test version $4 updated 0
PUBLISH easgate:changed "$1 $4"
EXEC
EOF
}
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

# 1. allowed passes; unknown is blocked (unknown_devices: block) and sighted
core_set DEVA allow "" 1
passes deva alice || eg_fail "allowed device DEVA did not pass"
blocked devnobody alice || eg_fail "unknown device was not blocked"
sleep 0.3
redis-cli -p "$redis_port" XRANGE easgate:sightings - + | eg_has DEVNOBODY ||
  eg_fail "unknown device not in easgate:sightings"

# 2. block -> next request blocked within 1 s
core_set DEVA block "" 2
t0=$(ms_now)
until blocked deva alice; do
  [ $(( $(ms_now) - t0 )) -lt 1000 ] || eg_fail "DEVA still passes 1 s after the block"
  sleep 0.05
done
echo "block effective after $(( $(ms_now) - t0 )) ms"
core_set DEVA allow "" 3
sleep 0.2
passes deva alice || eg_fail "DEVA does not pass after allow again"

# 3. user binding
core_set DEVB allow alice 1
passes devb alice || eg_fail "DEVB bound to alice does not pass for alice"
blocked devb bob || eg_fail "DEVB bound to alice passes for bob"
grep -q 'user-mismatch' "$TMP/access.log" || eg_fail "no user-mismatch reason in the access log"

# 4. a held Ping is cut within 1 s of the block
core_set DEVP allow "" 1
passes devp alice || eg_fail "DEVP does not pass"
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x0330\x00\x01\x01' >"$TMP/ping"
curl -s --max-time 40 -o "$TMP/pingb" -w '%{http_code}' -X POST -H 'MS-ASProtocolVersion: 14.1' \
  --data-binary @"$TMP/ping" \
  "http://127.0.0.1:$proxy_port$EAS?Cmd=Ping&User=alice&DeviceId=DEVP&DeviceType=iPhone" \
  >"$TMP/pingcode" &
ping_pid=$!
sleep 1
kill -0 $ping_pid 2>/dev/null || eg_fail "the Ping was not held"
t0=$(ms_now)
core_set DEVP block "" 2
for _ in $(seq 40); do kill -0 $ping_pid 2>/dev/null || break; sleep 0.05; done
wait $ping_pid || true
cut=$(( $(ms_now) - t0 ))
[ $cut -lt 1000 ] || eg_fail "held Ping answered $cut ms after the block (want < 1000)"
echo "held Ping cut $cut ms after the block"

# 5. outage: cached allow served, then stale after max_stale, then back
core_set DEVC allow "" 1
# One request: one of the two workers has DEVC in its cache. SO_REUSEPORT
# spreads the 8 requests after the outage over both workers at random; the
# cold one answers from what the other fetched (the process-wide fallback),
# else one of them would be blocked (all 8 landing on the warm worker: 1/256).
send FolderSync devc alice; [ $fwd = 1 ] || eg_fail "DEVC does not pass"
kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
sleep 0.5
for _ in 1 2; do passes devc alice || eg_fail "known allowed device blocked right after Redis went away"; done
metrics | eg_has '^easgate_redis_connected 0' || eg_fail "metrics do not show Redis down"
# max_stale counts from the last contact with Redis; a loaded machine may be
# slow to get here, so wait for it rather than sleep a fixed time.
t0=$(ms_now)
until blocked devc alice; do
  [ $(( $(ms_now) - t0 )) -lt 15000 ] || eg_fail "device still passes after max_stale without Redis"
  sleep 0.25
done
grep -q 'state-stale' "$TMP/access.log" || eg_fail "no state-stale reason in the access log"
eg_redis
core_set DEVC allow "" 2
t0=$(ms_now)
until passes devc alice; do
  [ $(( $(ms_now) - t0 )) -lt 8000 ] || eg_fail "DEVC still blocked 8 s after Redis came back"
  sleep 0.2
done
echo "back $(( $(ms_now) - t0 )) ms after Redis restarted"

eg_pass "device state from Redis: block, user binding, held Ping cut, outage and max_stale"
