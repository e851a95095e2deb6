#!/bin/bash
# The management core against a real redis-server: maintenance commands push
# each change (hash + announcement), `easgate core resync` heals a flushed
# Redis and removes keys of deleted devices, the running core blocks a device
# when its grace period ends (timer), and a restart keeps everything.
source "$(dirname "$0")/lib.sh" "$@"

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "SKIP: redis-server/redis-cli not installed"; exit 77; }
EG="$BUILD/easgate"
[ -x "$EG" ] || eg_fail "no easgate binary in $BUILD"

eg_redis
R() { redis-cli -p "$redis_port" --raw "$@"; }

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
compliance:
  max_checkin_age: 72h
  grace_period: 2s
  unmanaged_devices: block
EOF
cat >"$TMP/easgate.yaml" <<EOF
policy: policy.yaml
log: { level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
core:
  database: registry.db
  tick: 200ms
EOF
C=(-c "$TMP/easgate.yaml")

# A device an admin registers is unmanaged: blocked, pushed with the user.
"$EG" core device add apple0001 --user alice@example.com --type iPhone "${C[@]}" \
  >"$TMP/out.log" 2>&1 || eg_fail "device add failed: $(cat "$TMP/out.log")"
[ "$(R HGET easgate:dev:APPLE0001 state)" = block ] || eg_fail "new device not blocked in redis"
[ "$(R HGET easgate:dev:APPLE0001 reason)" = unmanaged ] || eg_fail "reason not 'unmanaged'"
[ "$(R HGET easgate:dev:APPLE0001 user)" = alice@example.com ] || eg_fail "user not written"
v1=$(R HGET easgate:dev:APPLE0001 version)

# An admin allow bumps the version and is announced on easgate:changed.
redis-cli -p "$redis_port" --raw SUBSCRIBE easgate:changed >"$TMP/sub.out" 2>&1 &
sub=$!
EG_PIDS+=("$sub")
sleep 0.3
"$EG" core device allow APPLE0001 --note "vip" "${C[@]}" >/dev/null 2>&1 || eg_fail "allow failed"
[ "$(R HGET easgate:dev:APPLE0001 state)" = allow ] || eg_fail "allow not written"
v2=$(R HGET easgate:dev:APPLE0001 version)
[ "$v2" -gt "$v1" ] || eg_fail "version did not grow ($v1 -> $v2)"
for _ in $(seq 20); do grep -q "APPLE0001 $v2" "$TMP/sub.out" && break; sleep 0.1; done
grep -q "APPLE0001 $v2" "$TMP/sub.out" || eg_fail "no announcement 'APPLE0001 $v2'"
kill "$sub" 2>/dev/null

# Bad input: a clear error and exit 2, no crash.
"$EG" core device block 'bad id!' "${C[@]}" 2>"$TMP/err.log"; rc=$?
[ $rc -eq 2 ] && grep -q "not a DeviceId" "$TMP/err.log" || eg_fail "bad DeviceId: rc=$rc"
"$EG" core device block NOSUCH1 "${C[@]}" 2>"$TMP/err.log"; rc=$?
[ $rc -eq 1 ] && grep -q "not registered" "$TMP/err.log" || eg_fail "unknown device: rc=$rc"

# Resync: a flushed Redis heals, a deleted device's key and a stray key go.
for i in $(seq 1 20); do
  "$EG" core device add "BULK$i" --user "u$i" "${C[@]}" >/dev/null 2>&1 || eg_fail "add BULK$i"
done
"$EG" core device delete BULK20 "${C[@]}" >/dev/null 2>&1 || eg_fail "delete failed"
[ "$(R EXISTS easgate:dev:BULK20)" = 0 ] || eg_fail "deleted device still in redis"
R FLUSHALL >/dev/null
R HSET easgate:dev:GHOST state allow version 1 >/dev/null
R SET other:key keep >/dev/null
"$EG" core resync "${C[@]}" >"$TMP/resync.out" 2>&1 || eg_fail "resync failed: $(cat "$TMP/resync.out")"
grep -q "20 devices written, 1 stale keys removed" "$TMP/resync.out" ||
  eg_fail "resync said: $(cat "$TMP/resync.out")"
[ "$(R EXISTS easgate:dev:GHOST)" = 0 ] || eg_fail "stray key survived resync"
[ "$(R GET other:key)" = keep ] || eg_fail "resync touched a key outside easgate:"
[ "$(R HGET easgate:dev:APPLE0001 state)" = allow ] || eg_fail "resync lost APPLE0001"
[ "$(R HGET easgate:dev:APPLE0001 version)" = "$v2" ] || eg_fail "resync changed the version"
[ "$(R HGET easgate:dev:BULK7 user)" = u7 ] || eg_fail "resync lost BULK7's user"

# The running core: a managed device that never checks in is in grace, then
# the timer blocks it once the 2 s grace period is over.
eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 50); do grep -q "core: running" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: running" "$TMP/core.log" || eg_fail "core did not start"
"$EG" core device manage BULK1 "${C[@]}" >/dev/null 2>&1 || eg_fail "manage failed"
[ "$(R HGET easgate:dev:BULK1 state)" = allow ] || eg_fail "managed device not in grace"
[ "$(R HGET easgate:dev:BULK1 reason)" = never-checked-in ] || eg_fail "grace reason wrong"
blocked=
for _ in $(seq 60); do
  [ "$(R HGET easgate:dev:BULK1 state)" = block ] && { blocked=1; break; }
  sleep 0.1
done
[ -n "$blocked" ] || eg_fail "grace period ended but the core did not block BULK1"
[ "$(R HGET easgate:dev:BULK1 reason)" = never-checked-in ] || eg_fail "block reason wrong"

# A device first seen by a proxy (its sighting on the stream, with auth:
# Exchange answered 2xx) is registered as unmanaged, blocked and listed;
# DeviceInformation merges; replays change nothing; a bad entry is skipped;
# a wipe acknowledgement is recorded. Sightings without auth (the proxy
# answered the request itself) change no registry row and make no Redis
# key: an unknown device is only pending.
wait_field() { # KEY FIELD VALUE
  for _ in $(seq 50); do [ "$(R HGET "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
  eg_fail "$1 $2 is '$(R HGET "$1" "$2")', want '$3'"
}
ms=$(($(date +%s) * 1000))
R XADD easgate:sightings '*' kind unknown-device device 'bad id' instance p/1 time "$ms" >/dev/null
R XADD easgate:sightings '*' kind unknown-device device noauth01 instance p/1 time "$ms" \
  user eve@example.com device_type Android >/dev/null
R XADD easgate:sightings '*' kind unknown-device device andc0ffee01 instance p/1 time "$ms" \
  user bob@example.com device_type Android user_agent Android-Mail/2023 auth exchange >/dev/null
wait_field easgate:dev:ANDC0FFEE01 state block
wait_field easgate:dev:ANDC0FFEE01 reason unmanaged
wait_field easgate:dev:ANDC0FFEE01 user bob@example.com
"$EG" core devices --managed no "${C[@]}" | eg_has "^ANDC0FFEE01 .*unmanaged" ||
  eg_fail "the sighted device is not listed as unmanaged"
"$EG" core pending "${C[@]}" | eg_has "^NOAUTH01 *eve@example.com" ||
  eg_fail "the unauthenticated sighting's device is not pending"
"$EG" core pending "${C[@]}" | eg_has "^ANDC0FFEE01" && eg_fail "a registered device is pending"
"$EG" core device show NOAUTH01 "${C[@]}" >/dev/null 2>&1 &&
  eg_fail "an unauthenticated sighting registered a device"
[ "$(R EXISTS easgate:dev:NOAUTH01)" = 0 ] || eg_fail "an unauthenticated sighting made a Redis key"
R XADD easgate:sightings '*' kind device-info device ANDC0FFEE01 instance p/2 time "$ms" \
  model SM-G991B os 'Android 13' imei 350000000000001 auth exchange >/dev/null
merged=
for _ in $(seq 50); do
  "$EG" core device show ANDC0FFEE01 "${C[@]}" >"$TMP/show.out" 2>&1
  grep -q "model: *SM-G991B" "$TMP/show.out" && { merged=1; break; }
  sleep 0.1
done
[ -n "$merged" ] || eg_fail "device-info not merged: $(cat "$TMP/show.out")"
grep -q "^eas_os: *Android 13" "$TMP/show.out" || eg_fail "reported OS not split into family and version"
grep -q "^os: *$" "$TMP/show.out" || eg_fail "a sighting wrote the authenticated OS"
v=$(R HGET easgate:dev:ANDC0FFEE01 version)
R XADD easgate:sightings '*' kind unknown-device device ANDC0FFEE01 instance p/1 time "$ms" \
  user mallory@example.com auth exchange >/dev/null
# Unauthenticated DeviceInformation of a registered device changes nothing.
R XADD easgate:sightings '*' kind device-info device ANDC0FFEE01 instance p/2 time "$ms" \
  model FORGED os 'Android 4' >/dev/null
sleep 0.6
"$EG" core device show ANDC0FFEE01 "${C[@]}" | eg_has "model: *SM-G991B" ||
  eg_fail "unauthenticated device-info was merged"
[ "$(R HGET easgate:dev:ANDC0FFEE01 version)" = "$v" ] || eg_fail "a replayed sighting bumped the version"
[ "$(R HGET easgate:dev:ANDC0FFEE01 user)" = bob@example.com ] || eg_fail "a later user rebound the device"
"$EG" core device wipe ANDC0FFEE01 "${C[@]}" >/dev/null 2>&1 || eg_fail "wipe failed"
wait_field easgate:dev:ANDC0FFEE01 state wipe
R XADD easgate:sightings '*' kind wipe-ack device ANDC0FFEE01 instance p/1 time "$ms" status 1 >/dev/null
acked=
for _ in $(seq 50); do
  "$EG" core device show ANDC0FFEE01 "${C[@]}" | eg_has "wipe_acked: *[0-9]" && { acked=1; break; }
  sleep 0.1
done
[ -n "$acked" ] || eg_fail "wipe acknowledgement not recorded"
[ "$(R XPENDING easgate:sightings core | head -1)" = 0 ] || eg_fail "sightings left unacknowledged"
kill -0 "$core_pid" || eg_fail "core died while reading sightings"

# Restart keeps everything: stop the core, flush Redis, start again.
kill "$core_pid"; wait "$core_pid" 2>/dev/null; rc=$?
[ $rc -eq 0 ] || eg_fail "core exited with $rc on SIGTERM"
grep -q "Sanitizer" "$TMP/core.log" && eg_fail "sanitizer report from the core"
R FLUSHALL >/dev/null
eg_stack -n core2 core "$TMP/easgate.yaml"
for _ in $(seq 50); do grep -q "core: running" "$TMP/core2.log" && break; sleep 0.1; done
[ "$(R HGET easgate:dev:BULK1 state)" = block ] || eg_fail "restart lost BULK1's block"
grep -q "rules unchanged since the last full evaluation" "$TMP/core2.log" ||
  eg_fail "a restart with the same rules re-evaluated every device"
[ "$(R HGET easgate:dev:APPLE0001 state)" = allow ] || eg_fail "restart lost the admin allow"
[ "$(R EXISTS easgate:dev:BULK20)" = 0 ] || eg_fail "restart resurrected a deleted device"
# SIGHUP: the core re-reads the compliance rules and re-evaluates everything.
sed -i 's/unmanaged_devices: block/unmanaged_devices: quarantine/' "$TMP/policy.yaml"
kill -HUP "$core2_pid"
wait_field easgate:dev:BULK5 state quarantine
grep -q "core: reload: compliance rules re-read" "$TMP/core2.log" || eg_fail "no reload logged"
# A broken policy on SIGHUP keeps the rules in force and says where the error is.
printf 'compliance:\n  grace_period: soon\n' >"$TMP/policy.yaml"
kill -HUP "$core2_pid"
for _ in $(seq 50); do grep -q "keeping the rules in force" "$TMP/core2.log" && break; sleep 0.1; done
grep -q "policy.yaml:2:17: .*keeping the rules in force" "$TMP/core2.log" ||
  eg_fail "a bad policy on SIGHUP was not reported with its position"
kill -0 "$core2_pid" || eg_fail "the core died on a bad policy"
[ "$(R HGET easgate:dev:BULK5 state)" = quarantine ] || eg_fail "a bad reload changed states"
printf 'unknown_devices: quarantine\ncompliance:\n  unmanaged_devices: quarantine\n' >"$TMP/policy.yaml"
"$EG" core devices --user u7 "${C[@]}" | eg_has "^BULK7 " || eg_fail "devices --user u7 misses BULK7"
"$EG" core audit "${C[@]}" | eg_has "device.allow" || eg_fail "audit log misses the allow"
"$EG" core device show APPLE0001 "${C[@]}" | eg_has "allow .*vip" || eg_fail "history misses the allow"

[ "$(R HGET easgate:dev:ANDC0FFEE01 state)" = block ] || eg_fail "restart lost the block that follows a wipe acknowledgement"

eg_pass "core: push, announcements, resync, timers, sightings, restart"
