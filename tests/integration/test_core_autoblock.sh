#!/usr/bin/env bash
# The core's side of the proxies' abuse reports (docs/state-contract.md),
# with redis-server and `easgate core` (the test appends the entries a proxy
# would, with redis-cli):
#   - an autoblock entry blocks a registered device: its hash says block with
#     reason autoblock:RULE, the API and `easgate admin devices explain`
#     show it, the audit log has device.autoblock by proxy with the count;
#   - the same entry again changes nothing (no new version, no second row);
#   - an entry for a device the registry does not hold creates nothing;
#   - an admin's reset lifts the block at once;
#   - a short block (block_ms 1500) ends by itself within 5 s (the timer);
#   - an auth-block entry becomes one proxy.auth-block audit row;
#   - an entry whose action is quarantine quarantines the device (reason
#     autoquarantine:RULE), listed by `devices list --state quarantine`,
#     until an admin allows it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl python3; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }
CERTS=$(eg_certs)

cport=$(eg_port)
eg_redis
cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
compliance:
  unmanaged_devices: allow
EOF
eg_conf - <<EOF
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
  tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
EOF
C=(-c "$TMP/easgate.yaml")
EG="$BUILD/easgate"
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null || eg_fail "init-admin failed"
ADMIN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"

admin() { "$EG" admin --url "https://127.0.0.1:$cport" --cacert "$CERTS/ca.crt" --token "$ADMIN" "$@"; }
R() { redis-cli -p "$redis_port" "$@"; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
within() {
  local ms=$1; shift
  local t0; t0=$(ms_now)
  until "$@"; do
    [ $(( $(ms_now) - t0 )) -lt "$ms" ] || return 1
    sleep 0.05
  done
  echo "  '$*' after $(( $(ms_now) - t0 )) ms"
}
hstate() { R HGET easgate:dev:ABDEV01 state; }
hreason() { R HGET easgate:dev:ABDEV01 reason; }
is_state() { [ "$(hstate)" = "$1" ] && [ "$(hreason)" = "$2" ]; }
autoblock() { # DEVICE RULE BLOCK_MS [ACTION]
  R XADD easgate:sightings '*' kind autoblock device "$1" instance p/1 time "$T" rule "$2" \
    count 501 window_ms 3600000 block_ms "$3" action "${4:-block}" client_addr 192.0.2.7 >/dev/null
}
drained() { # every entry handed to the core was acknowledged
  for _ in $(seq 100); do
    [ "$(R XPENDING easgate:sightings core | head -1)" = 0 ] &&
      [ "$(R XINFO STREAM easgate:sightings | awk 'f{print; exit} /^last-generated-id$/{f=1}')" = \
        "$(R XINFO GROUPS easgate:sightings | awk 'f{print; exit} /^last-delivered-id$/{f=1}')" ] &&
      return 0
    sleep 0.05
  done
  return 1
}

# A device Exchange accepted: registered, allowed.
R XADD easgate:sightings '*' kind unknown-device device ABDEV01 instance p/1 time "$(ms_now)" \
  user alice@example.com device_type iPhone auth exchange >/dev/null
within 3000 is_state allow unmanaged-allowed || eg_fail "the device was not registered"

# 1. Autoblock: blocked with its reason, shown, audited.
T=$(ms_now)
autoblock ABDEV01 SyncCommands 600000
within 3000 is_state block autoblock:SyncCommands || eg_fail "autoblock did not block: $(hstate) $(hreason)"
admin devices show ABDEV01 | eg_has 'autoblock:SyncCommands' || eg_fail "devices show lacks the reason"
admin --json devices show ABDEV01 | python3 -c '
import json, sys
d = json.load(sys.stdin)["device"]
t = int(sys.argv[1])
assert d["reason"] == "autoblock:SyncCommands", d
assert d["autoblock_until"] == t + 600000, (d["autoblock_until"], t)' "$T" ||
  eg_fail "the API does not show the autoblock's end"
admin devices explain ABDEV01 >"$TMP/explain"
eg_has -E '^state: block \(autoblock:SyncCommands' <"$TMP/explain" || eg_fail "explain: $(cat "$TMP/explain")"
eg_has -E 'autoblock +blocked: autoblock:SyncCommands, [0-9]+ s left' <"$TMP/explain" ||
  eg_fail "explain lacks the autoblock check: $(cat "$TMP/explain")"
admin audit --target ABDEV01 >"$TMP/audit"
grep 'device.autoblock' "$TMP/audit" | eg_has 'proxy.*501 in 3600000 ms' || eg_fail "audit: $(cat "$TMP/audit")"

# 2. A replay changes nothing; an unknown device is not created.
v=$(R HGET easgate:dev:ABDEV01 version)
autoblock ABDEV01 SyncCommands 600000
autoblock NOSUCHDEV SyncCommands 600000
drained || eg_fail "the core did not take the entries"
[ "$(R HGET easgate:dev:ABDEV01 version)" = "$v" ] || eg_fail "a replay moved the version"
[ "$(admin audit --target ABDEV01 | grep -c 'device.autoblock')" = 1 ] || eg_fail "a replay was audited again"
[ "$(R EXISTS easgate:dev:NOSUCHDEV)" = 0 ] || eg_fail "an autoblock created a device"
admin devices show NOSUCHDEV >/dev/null 2>&1 && eg_fail "an autoblock registered a device"

# 3. An admin's reset lifts it.
admin devices reset ABDEV01 --note 'false alarm' >/dev/null || eg_fail "reset failed"
within 1000 is_state allow unmanaged-allowed || eg_fail "reset did not lift the autoblock"
admin devices explain ABDEV01 | eg_has -E 'autoblock +none' || eg_fail "explain still shows the autoblock"
admin --json devices show ABDEV01 | eg_has '"autoblock_until": *0' || eg_fail "reset left the autoblock's end"

# 4. A short block ends by itself.
T=$(ms_now)
autoblock ABDEV01 CommandFrequency 1500
within 3000 is_state block autoblock:CommandFrequency || eg_fail "the second autoblock did not block"
within 5000 is_state allow unmanaged-allowed || eg_fail "the autoblock did not end by itself"
took=$(( $(ms_now) - T ))
echo "  ended $took ms after the crossing (block_ms 1500)"
[ "$took" -ge 1500 ] || eg_fail "the block ended early"

# 5. auth-block: one audit row.
R XADD easgate:sightings '*' kind auth-block device ABDEV01 instance p/1 time "$(ms_now)" \
  scope user user bob strike 2 block_ms 120000 client_addr 198.51.100.4 >/dev/null
audited() { admin audit --target ABDEV01 | grep 'proxy.auth-block' | eg_has 'scope user.*bob.*strike 2'; }
within 3000 audited || eg_fail "no proxy.auth-block row: $(admin audit --target ABDEV01)"

# 6. The policy's action quarantine: quarantined until an admin allows it.
T=$(ms_now)
autoblock ABDEV01 OutOfBudgets 600000 quarantine
within 3000 is_state quarantine autoquarantine:OutOfBudgets ||
  eg_fail "autoquarantine did not quarantine: $(hstate) $(hreason)"
admin devices list --state quarantine | eg_has ABDEV01 || eg_fail "the device is not listed as quarantined"
admin devices explain ABDEV01 | eg_has -E 'autoblock +quarantined: autoquarantine:OutOfBudgets' ||
  eg_fail "explain lacks the autoquarantine: $(admin devices explain ABDEV01)"
admin devices allow ABDEV01 --note 'approved' >/dev/null || eg_fail "allow failed"
within 1000 is_state allow admin-allow || eg_fail "an admin's allow did not end the quarantine"

grep -q 'unknown kind' "$TMP/core.log" && eg_fail "the core still calls a kind unknown"
eg_stop_clean core
eg_pass "autoblock blocks, shows, is reset and expires; auth-block is audited"
