#!/usr/bin/env bash
# A proxy whose easgate.yaml names no policy file (issue 17): it applies the
# defaults of an empty policy.yaml, so the device states the core writes to
# Redis still decide. Before, it allowed everything (reason no-policy) and an
# admin's block or wipe had no effect on it. With redis-server and exsim; the
# test plays the core with redis-cli (HSET + PUBLISH, as test_redis_state).
#   - the proxy warns at start that it runs on the defaults;
#   - a device whose state is block, wipe or quarantine is refused;
#   - a device bound to alice is refused for bob (user-mismatch);
#   - an allowed device and an unknown one (unknown_devices: allow, the
#     default) pass;
#   - a block pushed while the device syncs takes effect within 1 s;
#   - SIGHUP: the same, and the warning again;
#   - `easgate check -c` says what the proxy does and prints the decisions.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }

eg_redis
eg_exsim
eg_conf - <<EOF
  lookup_timeout: 500ms # a loaded machine answers slowly; this test is not about the timeout
  sighting_interval: 1h
EOF
sed -i '/^policy:/d' "$TMP/easgate.yaml"
! grep -q policy "$TMP/easgate.yaml" || eg_fail "eg_conf's policy: line is still there"

core_set() { # DEVICE STATE USER VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "$3" reason admin-$2 version $4 updated 0
PUBLISH easgate:changed "$1 $4"
EXEC
EOF
}
# The core's verdicts, there before the proxy starts.
core_set NPBLOCK block "" 1
core_set NPWIPE wipe "" 1
core_set NPQUAR quarantine "" 1
core_set NPALLOW allow "" 1
core_set NPBOUND allow alice 1
core_set NPLATE allow "" 1

eg_stack proxy "$TMP/easgate.yaml"
grep -q "names no policy file: the defaults of an empty policy apply" "$TMP/proxy.log" ||
  eg_fail "no warning at start about the missing policy file"

EAS=/Microsoft-Server-ActiveSync
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
# send DEVICE USER: sets $code (HTTP status) and $fwd (1 if Exchange saw it)
send() {
  curl -s --max-time 10 -D "$TMP/h" -o "$TMP/b" -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=FolderSync&User=$2&DeviceId=$1&DeviceType=iPhone" || true
  code=$(grep '^HTTP/' "$TMP/h" | tail -1 | awk '{print $2}')
  fwd=0; grep -qi '^X-Exsim-Cmd:' "$TMP/h" && fwd=1
  return 0
}
# passes / refused DEVICE USER: on every worker (several tries)
passes() { for _ in 1 2 3 4; do send "$1" "$2"; [ $fwd = 1 ] || return 1; done; }
refused() { for _ in 1 2 3 4; do send "$1" "$2"; [ $fwd = 0 ] || return 1; done; }
# reason DEVICE REASON: the access log's last line for DEVICE has REASON
reason() {
  grep "\"$1\"" "$TMP/access.log" | tail -1 | grep -q "\"reason\":\"$2\"" ||
    eg_fail "$1: want reason $2, got: $(grep "\"$1\"" "$TMP/access.log" | tail -1)"
}

refused NPBLOCK alice || eg_fail "a device the core blocked reaches Exchange through a proxy without a policy"
reason NPBLOCK state-block
refused NPWIPE alice || eg_fail "a device the core is wiping reaches Exchange"
reason NPWIPE state-wipe
refused NPQUAR alice || eg_fail "a quarantined device reaches Exchange"
reason NPQUAR state-quarantine
refused NPBOUND bob || eg_fail "a device bound to alice passes for bob"
reason NPBOUND user-mismatch
eg_pass "no policy file: the device states in Redis apply (block, wipe, quarantine, user binding)"

passes NPALLOW alice || eg_fail "an allowed device is refused"
reason NPALLOW state-allow
passes NPBOUND alice || eg_fail "a device bound to alice is refused for alice"
passes NPNOBODY alice || eg_fail "an unknown device is refused (unknown_devices: allow is the default)"
reason NPNOBODY unknown-device
! grep -q '"reason":"no-policy"' "$TMP/access.log" || eg_fail "a request was decided with reason no-policy"
eg_pass "no policy file: allowed and unknown devices pass with the defaults' reasons"

ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
passes NPLATE alice || eg_fail "NPLATE does not pass before the block"
core_set NPLATE block "" 2
t0=$(ms_now)
until refused NPLATE alice; do
  [ $(( $(ms_now) - t0 )) -lt 1000 ] || eg_fail "NPLATE still passes 1 s after the core blocked it"
  sleep 0.05
done
eg_pass "no policy file: a block the core pushes is in effect on every worker $(( $(ms_now) - t0 )) ms later"

# A reload keeps the defaults and says so again.
kill -HUP "$proxy_pid"
for _ in $(seq 50); do grep -q "reloaded" "$TMP/proxy.log" && break; sleep 0.1; done
grep -q "reloaded $TMP/easgate.yaml\$" "$TMP/proxy.log" || eg_fail "no reload line: $(grep reloaded "$TMP/proxy.log")"
[ "$(grep -c "names no policy file: the defaults of an empty policy apply" "$TMP/proxy.log")" = 2 ] ||
  eg_fail "the reload did not warn again about the missing policy file"
refused NPBLOCK alice || eg_fail "after a reload, a device the core blocked reaches Exchange"
passes NPNOBODY alice || eg_fail "after a reload, an unknown device is refused"
eg_pass "no policy file: a reload keeps the defaults and warns again"

rc=0; "$BUILD/easgate" check -c "$TMP/easgate.yaml" >"$TMP/check.out" 2>"$TMP/check.err" || rc=$?
[ "$rc" = 0 ] || eg_fail "check -c: exit $rc: $(cat "$TMP/check.err")"
grep -qF "warning: proxy: no policy file: the defaults of an empty policy apply" "$TMP/check.err" &&
  grep -qF "the device states the core writes to Redis apply" "$TMP/check.err" &&
  ! grep -q "no-policy" "$TMP/check.err" || eg_fail "check -c: the warning does not say what the proxy does: $(cat "$TMP/check.err")"
grep -q "^#   unknown device (not in Redis): *allow " "$TMP/check.out" ||
  eg_fail "check -c: the effective decisions are not printed: $(cat "$TMP/check.out")"
eg_pass "check -c: a proxy without a policy file is warned about with what it does, and its decisions printed"
