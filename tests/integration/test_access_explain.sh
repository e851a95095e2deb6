#!/usr/bin/env bash
# `easgate proxy explain` against the live decision, row by row of
# docs/access-model.md's proxy table (redis-server, exsim, `easgate proxy`;
# the test writes the core's states with redis-cli): for each row the state
# is written, one live FolderSync goes through the proxy, and explain's
# "decision:" line must name the decision and reason of the access log.
# Row P9 (no contact with Redis for max_stale) is a running proxy's own
# state that a fresh explain cannot have (test_redis_state covers it);
# every other row is here, under three policies, P24 with Redis stopped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }

policy() { # UNKNOWN_DEVICES [EXTRA]
  cat >"$TMP/policy.yaml" <<EOF
unknown_devices: $1
user_agents:
  block: ["BadMail*"]
devices:
  allow: ["STATICALLOW1"]
  block: ["STATICBLOCK1"]
device_rules:
  - match: { device_type: "WindowsMail" }
    action: block
  - match: { device_type: "Android9" }
    action: quarantine
  - match: { device_type: "TrustedPhone" }
    action: allow
${2:-}
EOF
}
policy allow
eg_stack
connected() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" | awk '/^easgate_redis_connected /{print $2}'; }
for _ in $(seq 50); do [ "$(connected)" = 2 ] && break; sleep 0.1; done
[ "$(connected)" = 2 ] || { echo "SKIP: proxy state store not wired"; exit 77; }

ver=0
core_set() { # DEVICE STATE USER REASON
  ver=$((ver + 1))
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "$3" reason $4 version $ver updated $(( $(date +%s) * 1000 ))
PUBLISH easgate:changed "$1 $ver"
EXEC
EOF
}
BASIC="Authorization: Basic YWxpY2U6cHc=" # alice:pw
KERB="Authorization: Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEF"
NTLM1="Authorization: NTLM TlRMTVNTUAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
rows=0
# row NAME DEVICE TYPE UA AUTH [STATE USER REASON]: live vs explain
row() {
  local name=$1 dev=$2 type=$3 ua=$4 auth=$5
  if [ $# -gt 5 ]; then core_set "$dev" "$6" "$7" "$8"; sleep 0.2; fi
  local q="Cmd=FolderSync&User=alice&DeviceId=$dev&DeviceType=$type"
  curl -s --max-time 10 -o /dev/null -X POST --data-binary '' -H 'MS-ASProtocolVersion: 14.1' \
    -H "User-Agent: $ua" -H "$auth" "http://127.0.0.1:$proxy_port/Microsoft-Server-ActiveSync?$q" || true
  local line live
  for _ in $(seq 20); do
    line=$(grep "\"$dev\"" "$TMP/access.log" | tail -1 || true)
    [ -n "$line" ] && break
    sleep 0.05
  done
  live=$(sed -n 's/.*"decision":"\([a-z-]*\)","reason":"\([^"]*\)".*/\1 (\2)/p' <<<"$line")
  [ -n "$live" ] || eg_fail "$name: no access log line for $dev: $line"
  "$BUILD/easgate" proxy explain -c "$TMP/easgate.yaml" "$q" -H 'MS-ASProtocolVersion: 14.1' \
    -H "User-Agent: $ua" -H "$auth" >"$TMP/explain.out" 2>&1 || eg_fail "$name: explain failed: $(cat "$TMP/explain.out")"
  grep -qxF "decision: $live" "$TMP/explain.out" ||
    eg_fail "$name: live '$live', explain: $(cat "$TMP/explain.out")"
  rows=$((rows + 1))
}

row P1 DEVP1 iPhone BadMail/1 "$BASIC" allow "" admin-allow
row P3 STATICBLOCK1 iPhone Apple-iPhone/1 "$BASIC" allow "" admin-allow
row P4 STATICALLOW1 iPhone Apple-iPhone/1 "$BASIC" block "" admin-block
row P5 DEVP5 WindowsMail Apple-iPhone/1 "$BASIC" allow "" compliant
row P6 DEVP6 Android9 Apple-iPhone/1 "$BASIC"
row P7 DEVP7 Android9 Apple-iPhone/1 "$BASIC" allow "" admin-allow
row P8 DEVP8 TrustedPhone Apple-iPhone/1 "$BASIC" block "" admin-block
row P11 DEVP11 iPhone Apple-iPhone/1 "$KERB" allow alice compliant
row P12 DEVP12 iPhone Apple-iPhone/1 "$BASIC" block alice jailbroken
row P13 DEVP13 iPhone Apple-iPhone/1 "$BASIC" allow bob compliant
row P14 DEVP14 iPhone Apple-iPhone/1 "$BASIC" wipe alice admin-wipe
row P15 DEVP15 iPhone Apple-iPhone/1 "$BASIC" quarantine "" unmanaged
row P16 DEVP16 iPhone Apple-iPhone/1 "$BASIC" allow alice compliant
row P17 DEVP17 TrustedPhone Apple-iPhone/1 "$BASIC" quarantine "" unmanaged
row P18 DEVP18 TrustedPhone Apple-iPhone/1 "$BASIC" block "" os-too-old
row P22 DEVP22 iPhone Apple-iPhone/1 "$BASIC"
row P23 DEVP23 iPhone Apple-iPhone/1 "$NTLM1" allow alice compliant
grep -q '"device_id":"DEVP6".*"decision":"quarantine","reason":"rule:2"' "$TMP/access.log" ||
  eg_fail "P6: the notice answer does not log the rule that quarantined the phone"
eg_pass "explain agrees with the live decision: rows P1, P3-P8, P11-P18, P22, P23"

# reloaded N: wait for the proxy's Nth reload (a slow machine must not
# decide the next row with the old policy)
reloaded() {
  for _ in $(seq 100); do
    [ "$(grep -c 'info reloaded' "$TMP/proxy.log")" -ge "$1" ] && return 0
    sleep 0.1
  done
  eg_fail "the proxy did not reload ($1)"
}
policy block
kill -HUP "$proxy_pid"; reloaded 1
row P19 DEVP19 TrustedPhone Apple-iPhone/1 "$BASIC"
row P20 DEVP20 iPhone Apple-iPhone/1 "$BASIC"
eg_pass "explain agrees with the live decision: rows P19, P20 (unknown_devices: block)"

policy quarantine "identity:
  unverifiable: block"
sed -i 's/^  block: \["BadMail\*"\]/  allow: ["Apple-*"]/' "$TMP/policy.yaml"
kill -HUP "$proxy_pid"; reloaded 2
row P2 DEVP2 iPhone Other/1 "$BASIC"
row P10 DEVP10 iPhone Apple-iPhone/1 "$KERB"
row P21 DEVP21 iPhone Apple-iPhone/1 "$BASIC"
eg_pass "explain agrees with the live decision: rows P2, P10, P21 (quarantine, an app allow list, unverifiable: block)"

# Explain says why, step by step, and for an unknown DeviceId still decides.
"$BUILD/easgate" proxy explain -c "$TMP/easgate.yaml" \
  "Cmd=Ping&User=alice&DeviceId=NEVERSEEN1&DeviceType=Android9" -H "$BASIC" \
  -H 'User-Agent: Apple-iPhone/1' >"$TMP/x.out" 2>&1 || eg_fail "explain failed: $(cat "$TMP/x.out")"
for want in "state: no easgate:dev hash: the device is unknown to the core" \
            "device_rules\[2\] (line .*) quarantine: device_type=\"Android9\": match (first match)" \
            "device_rules\[1\] (line .*) block: device_type=\"WindowsMail\": no match" \
            "decision: quarantine (rule:2)" "answer: HTTP 403" "protocol_version: 0.0 (none"; do
  grep -q -- "$want" "$TMP/x.out" || eg_fail "explain lacks '$want': $(cat "$TMP/x.out")"
done
eg_pass "explain of an unknown DeviceId says so and still decides the request"

# P24: Redis gone, a device nobody cached: unknown, unknown_devices decides,
# live and explained alike (explain gives up on Redis after 2 s).
kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
for _ in $(seq 50); do [ "$(connected)" = 0 ] && break; sleep 0.1; done
[ "$(connected)" = 0 ] || eg_fail "the proxy still says Redis is connected"
row P24 DEVP24 iPhone Apple-iPhone/1 "$BASIC"
grep -q "^state: Redis did not answer" "$TMP/explain.out" || eg_fail "P24: $(cat "$TMP/explain.out")"
eg_pass "explain agrees with the live decision with Redis down (row P24; $rows rows compared)"
kill -0 "$proxy_pid" || eg_fail "the proxy died"
