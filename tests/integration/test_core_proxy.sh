#!/usr/bin/env bash
# The management core with the real proxy, end to end (redis-server, the
# Exchange simulator, `easgate proxy`, `easgate core`):
#   - a device the proxy turned away (unknown_devices: block, so Exchange
#     authenticated nobody) creates no registry row and no Redis key: it is
#     only pending; an admin adds it (approves it) and it shows up in
#     `easgate core devices` as unmanaged, and stays blocked
#     (unmanaged_devices: block);
#   - enrolling it (manage) lets it through;
#   - an admin block reaches the proxy: the next request is blocked within 1 s;
#   - reset: the rules decide again and it passes;
#   - a check-in reporting a jailbreak (grace period 0) blocks it within 1 s.
# With EG_CORE_RUN=1 (test_core_run.sh) both roles run in one `easgate run`.
# Skips (77) when a tool is missing or the proxy has no state store wired.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
compliance:
  unmanaged_devices: block
  block_jailbroken: true
  grace_period: 0
EOF
role=core  # EG_CORE_RUN: one process, `easgate run` (proxy on the main thread, core beside it)
[ -z "${EG_CORE_RUN:-}" ] || role=run
eg_stack -n core $role - <<EOF
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
EOF
C=(-c "$TMP/easgate.yaml")
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
[ -n "${EG_CORE_RUN:-}" ] || eg_stack proxy "$TMP/easgate.yaml"
metrics() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }
metrics | eg_has '^easgate_redis_connected' || { echo "SKIP: proxy state store not wired"; exit 77; }
for _ in $(seq 50); do
  [ "$(metrics | awk '/^easgate_redis_connected /{print $2}')" = 2 ] && break
  sleep 0.1
done

EAS=/Microsoft-Server-ActiveSync
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
# send DEVICE USER: sets $fwd (1 if Exchange saw the request)
send() {
  curl -s --max-time 10 -D "$TMP/h" -o "$TMP/b" -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=FolderSync&User=$2&DeviceId=$1&DeviceType=iPhone" || true
  fwd=0; grep -qi '^X-Exsim-Cmd:' "$TMP/h" && fwd=1
  return 0
}
passes() { for _ in 1 2 3 4; do send "$1" "$2"; [ $fwd = 1 ] || return 1; done; }
blocked() { for _ in 1 2 3 4; do send "$1" "$2"; [ $fwd = 0 ] || return 1; done; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# within MS CMD...: retry CMD until it succeeds or MS milliseconds pass
within() {
  local ms=$1; shift
  local t0; t0=$(ms_now)
  until "$@"; do
    [ $(( $(ms_now) - t0 )) -lt "$ms" ] || return 1
    sleep 0.05
  done
  echo "  '$*' after $(( $(ms_now) - t0 )) ms"
}

# 1. Turned away by a proxy: pending only (no registry row, no Redis key);
#    an admin adds it: registered as unmanaged, blocked.
blocked phone0001 alice@example.com || eg_fail "an unknown device passed"
pending() { [ "$(sqlite3 "$TMP/registry.db" "SELECT user FROM pending_devices WHERE device_id = 'PHONE0001'" 2>/dev/null)" = alice@example.com ]; }
within 3000 pending || eg_fail "the device the proxy turned away is not pending"
"$BUILD/easgate" core device show PHONE0001 "${C[@]}" >/dev/null 2>&1 &&
  eg_fail "an unauthenticated sighting created a registry row"
[ "$(redis-cli -p "$redis_port" EXISTS easgate:dev:PHONE0001)" = 0 ] ||
  eg_fail "an unauthenticated sighting created a Redis key"
"$BUILD/easgate" core device add PHONE0001 --user alice@example.com --type iPhone "${C[@]}" \
  >/dev/null || eg_fail "device add failed"
pending && eg_fail "an added device is still pending"
listed() { "$BUILD/easgate" core devices --managed no "${C[@]}" 2>/dev/null | eg_has "^PHONE0001 .*unmanaged"; }
within 3000 listed || eg_fail "the device a proxy saw is not listed as unmanaged"
"$BUILD/easgate" core device show PHONE0001 "${C[@]}" | eg_has "user: *alice@example.com" ||
  eg_fail "the user was not bound"
[ "$(redis-cli -p "$redis_port" HGET easgate:dev:PHONE0001 state)" = block ] ||
  eg_fail "the core did not write the unmanaged device's block"
blocked phone0001 alice@example.com || eg_fail "the unmanaged device passed"

# 2. Enrolled and checked in clean: the rules allow it, the proxy lets it through.
"$BUILD/easgate" core device manage PHONE0001 "${C[@]}" >/dev/null || eg_fail "manage failed"
[ "$(redis-cli -p "$redis_port" HGET easgate:dev:PHONE0001 reason)" = jailbreak-unknown ] ||
  eg_fail "a managed device that never checked in should fail closed (jailbreak-unknown)"
"$BUILD/easgate" core device checkin PHONE0001 --os iOS --os-version 17.1 --jailbroken no \
  "${C[@]}" >/dev/null || eg_fail "checkin failed"
within 1000 passes phone0001 alice@example.com || eg_fail "the managed device does not pass"
blocked phone0001 bob@example.com || eg_fail "the device passes for another user"

# 3. An admin block reaches the proxy within 1 s.
"$BUILD/easgate" core device block PHONE0001 --note "lost" "${C[@]}" >/dev/null || eg_fail "block failed"
within 1000 blocked phone0001 alice@example.com || eg_fail "still passes 1 s after the admin block"
grep -q '"reason":"state-block"' "$TMP/access.log" || eg_fail "no state-block decision in the access log"

# 4. Reset: back to the rules.
"$BUILD/easgate" core device reset PHONE0001 "${C[@]}" >/dev/null || eg_fail "reset failed"
within 1000 passes phone0001 alice@example.com || eg_fail "does not pass after reset"

# 5. A check-in that reports a jailbreak (grace period 0): blocked within 1 s.
"$BUILD/easgate" core device checkin PHONE0001 --jailbroken yes "${C[@]}" >/dev/null ||
  eg_fail "checkin failed"
[ "$(redis-cli -p "$redis_port" HGET easgate:dev:PHONE0001 reason)" = jailbroken ] ||
  eg_fail "reason is not jailbroken"
within 1000 blocked phone0001 alice@example.com || eg_fail "a jailbroken device still passes after 1 s"
"$BUILD/easgate" core device checkin PHONE0001 --jailbroken maybe "${C[@]}" 2>"$TMP/err" && 
  eg_fail "a bad check-in value was accepted"
grep -q "must be yes or no" "$TMP/err" || eg_fail "no clear error for a bad check-in value"

kill -0 "$core_pid" || eg_fail "the core died"
if [ -n "${EG_CORE_RUN:-}" ]; then
  kill -TERM "$core_pid"
  rc=0; wait "$core_pid" || rc=$?
  [ $rc -eq 0 ] || eg_fail "easgate run exited with $rc on SIGTERM"
  grep -q "core: stopping" "$TMP/core.log" || eg_fail "the core thread did not stop with the proxy"
fi
eg_pass "core + proxy: turned away -> pending only, added -> unmanaged, managed+clean passes, admin block < 1 s, reset, jailbreak < 1 s"
