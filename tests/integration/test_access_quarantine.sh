#!/usr/bin/env bash
# Quarantine as a state the admin acts on, and defaults that agree
# (docs/access-model.md), with redis-server, exsim, `easgate proxy` and
# `easgate core`, driven by build/easclient:
#   - rollout (unknown_devices: allow, nothing else written): an unenrolled
#     phone syncs, is recorded by the core (unmanaged-allowed) and keeps
#     syncing: no outage once the core has met it;
#   - a phone a device rule quarantines is recorded in quarantine (rule:1),
#     listed by `core devices --state quarantine`, and stays there;
#   - an admin's allow wins over the rule for that phone within 1 s, is
#     recorded with who and when, and `reset` hands it back to the rule
#     within 1 s;
#   - enforce (unknown_devices: quarantine): a new phone provisions with
#     Exchange, is recorded in quarantine (unmanaged), stays quarantined
#     (not blocked) on both of two proxies, and an admin's allow lets it
#     sync through either within 1 s: its quarantine sync key gets
#     FolderSync Status 9 and SyncKey 0 reaches Exchange (a clean resync).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
device_rules:
  - match: { device_type: "Android9" }
    action: quarantine
EOF
cport=$(eg_port)
eg_redis
eg_exsim
eg_conf - <<EOF
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")
EG=$BUILD/easgate
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null || eg_fail "init-admin failed"
TOKEN=$("$EG" core token "${C[@]}" --user root --role viewer 2>/dev/null)
eg_stack -n core core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
eg_stack proxy "$TMP/easgate.yaml"
connected() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" | awk '/^easgate_redis_connected /{print $2}'; }
for _ in $(seq 50); do [ "$(connected)" = 2 ] && break; sleep 0.1; done
[ "$(connected)" = 2 ] || { echo "SKIP: proxy state store not wired"; exit 77; }

R() { redis-cli -p "$redis_port" "$@"; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
within() { # MS CMD...: retry CMD until it succeeds or MS milliseconds pass
  local ms=$1; shift
  local t0; t0=$(ms_now)
  until "$@"; do
    [ $(( $(ms_now) - t0 )) -lt "$ms" ] || return 1
    sleep 0.05
  done
  echo "  '$*' after $(( $(ms_now) - t0 )) ms"
}
printf '<Provision xmlns="Provision"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>' >"$TMP/prov.xml"
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>EGQ-1</SyncKey></FolderSync>' >"$TMP/fsq.xml"
# ec DEVICE TYPE CMD FILE: one request, headers and body on stdout (to the
# proxy on port $P, the first one unless set)
ec() { "$BUILD/easclient" --url "http://127.0.0.1:${P:-$proxy_port}" --user bob --device "$1" --type "$2" \
  --show-headers "$3" "$4" 2>&1 || true; }
# reaches DEVICE TYPE: a FolderSync 0 of the device reaches Exchange
reaches() { ec "$1" "$2" FolderSync "$TMP/fs.xml" | grep -qi '^X-Exsim-Cmd: FolderSync'; }
# held DEVICE TYPE: it gets the quarantine Inbox, nothing from Exchange
held() {
  local out; out=$(ec "$1" "$2" FolderSync "$TMP/fs.xml")
  ! grep -qi '^X-Exsim' <<<"$out" && grep -q 'EGQ-inbox' <<<"$out"
}
state() { R HGET "easgate:dev:$1" state; }
# agree DEVICE TYPE: the core's explain (GET /api/v1/devices/ID/explain) gives
# the decision the proxy just logged for the device's last request
agree() {
  local line live
  line=$(grep "\"$1\"" "$TMP/access.log" | tail -1)
  live=$(sed -n 's/.*"decision":"\([a-z-]*\)","reason":"\([^"]*\)".*/\1 (\2)/p' <<<"$line")
  "$EG" admin --url "http://127.0.0.1:$cport" --token "$TOKEN" devices explain "$1" --type "$2" \
    --version 14.1 >"$TMP/cx.out" 2>&1 || eg_fail "explain $1 failed: $(cat "$TMP/cx.out")"
  grep -qxF "decision: $live" "$TMP/cx.out" || eg_fail "$1: live '$live', the core's explain: $(cat "$TMP/cx.out")"
}
reason() { R HGET "easgate:dev:$1" reason; }
# in_quarantine_list DEVICE: listed in quarantine by the registry's CLI and
# by the admin API (`easgate admin devices list --state quarantine`)
in_quarantine_list() {
  "$EG" core devices --state quarantine "${C[@]}" 2>/dev/null | grep -q "^$1 " &&
    "$EG" admin --url "http://127.0.0.1:$cport" --token "$TOKEN" devices list --state quarantine 2>/dev/null |
    grep -q "^$1 "
}
# in_no_quarantine_list DEVICE: listed by neither
in_no_quarantine_list() {
  ! "$EG" core devices --state quarantine "${C[@]}" 2>/dev/null | grep -q "^$1 " &&
    ! "$EG" admin --url "http://127.0.0.1:$cport" --token "$TOKEN" devices list --state quarantine 2>/dev/null |
    grep -q "^$1 "
}
has_state() { [ "$(state "$1")" = "$2" ]; }

# 1. Rollout: an unenrolled phone syncs, is recorded, and keeps syncing.
reaches ROLL1 iPhone || eg_fail "rollout: an unknown phone does not sync"
within 3000 has_state ROLL1 allow || eg_fail "rollout: the core did not record the phone (state '$(state ROLL1)')"
[ "$(reason ROLL1)" = unmanaged-allowed ] || eg_fail "rollout: reason '$(reason ROLL1)'"
for _ in 1 2 3; do reaches ROLL1 iPhone || eg_fail "rollout: the recorded phone is turned away"; done
agree ROLL1 iPhone
eg_pass "rollout: an unenrolled phone syncs, is recorded as unmanaged-allowed and keeps syncing"

# 2. A rule quarantines a phone: recorded in quarantine, listed, and it stays.
out=$(ec RULEQ1 Android9 Provision "$TMP/prov.xml")
grep -qi '^X-Exsim-Cmd: Provision' <<<"$out" || eg_fail "the quarantined Provision did not reach Exchange: $out"
within 3000 has_state RULEQ1 quarantine || eg_fail "rule: state '$(state RULEQ1)', want quarantine"
[ "$(reason RULEQ1)" = rule:1 ] || eg_fail "rule: reason '$(reason RULEQ1)', want rule:1"
in_quarantine_list RULEQ1 || eg_fail "rule: not listed by core devices --state quarantine"
held RULEQ1 Android9 || eg_fail "rule: the phone is not held in quarantine"
sleep 1
held RULEQ1 Android9 || eg_fail "rule: the phone left quarantine by itself"
has_state RULEQ1 quarantine || eg_fail "rule: quarantine turned into '$(state RULEQ1)'"
agree RULEQ1 Android9
grep -q "device_rules *match: rule:1" "$TMP/cx.out" || eg_fail "explain does not name the rule: $(cat "$TMP/cx.out")"
eg_pass "a rule-quarantined phone is recorded and listed in quarantine, and stays"

# 3. The admin allows it: wins over the rule within 1 s; who and when recorded.
"$EG" core device allow RULEQ1 --note "approved by the help desk" "${C[@]}" >/dev/null ||
  eg_fail "allow failed"
within 1000 reaches RULEQ1 Android9 || eg_fail "1 s after the admin allow the rule still holds the phone"
[ "$(reason RULEQ1)" = admin-allow ] || eg_fail "allow: reason '$(reason RULEQ1)'"
show=$("$EG" core device show RULEQ1 "${C[@]}")
grep -q "override: *allow" <<<"$show" || eg_fail "show does not say the override: $show"
grep -q "allow .*approved by the help desk" <<<"$show" || eg_fail "show lacks who/when/note: $show"
in_no_quarantine_list RULEQ1 || eg_fail "an allowed phone is still listed in quarantine"
agree RULEQ1 Android9
grep -q "skipped: an admin's override decides this device" "$TMP/cx.out" ||
  eg_fail "explain does not say the override skips the rule: $(cat "$TMP/cx.out")"
eg_pass "an admin allow wins over the quarantine rule within 1 s and is recorded"

# 4. reset: the rule decides again, within 1 s.
"$EG" core device reset RULEQ1 "${C[@]}" >/dev/null || eg_fail "reset failed"
within 1000 held RULEQ1 Android9 || eg_fail "1 s after reset the phone is not held by the rule again"
has_state RULEQ1 quarantine || eg_fail "reset: state '$(state RULEQ1)'"
agree RULEQ1 Android9
eg_pass "reset hands the phone back to the rule within 1 s"

# 5. Enforce: unknown_devices: quarantine (core and proxy reload the file).
sed -i 's/^unknown_devices: allow/unknown_devices: quarantine/' "$TMP/policy.yaml"
kill -HUP "$core_pid" "$proxy_pid"
for _ in $(seq 50); do grep -q "core: reload: compliance rules re-read" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reload: compliance rules re-read" "$TMP/core.log" || eg_fail "the core did not reload"
for _ in $(seq 100); do grep -q 'info reloaded' "$TMP/proxy.log" && break; sleep 0.1; done
grep -q 'info reloaded' "$TMP/proxy.log" || eg_fail "the proxy did not reload"
out=$(ec NEWQ1 iPhone Provision "$TMP/prov.xml")
grep -qi '^X-Exsim-Cmd: Provision' <<<"$out" || eg_fail "enforce: Provision did not reach Exchange: $out"
within 3000 has_state NEWQ1 quarantine || eg_fail "enforce: state '$(state NEWQ1)', want quarantine"
[ "$(reason NEWQ1)" = unmanaged ] || eg_fail "enforce: reason '$(reason NEWQ1)'"
in_quarantine_list NEWQ1 || eg_fail "enforce: not listed in quarantine"
held NEWQ1 iPhone || eg_fail "enforce: the new phone is not held"
sleep 1
has_state NEWQ1 quarantine || eg_fail "enforce: quarantine turned into '$(state NEWQ1)'"
held NEWQ1 iPhone || eg_fail "enforce: the phone left quarantine by itself"
agree NEWQ1 iPhone
# A second proxy on the same Redis holds it too.
p2=$(eg_port) a2=$(eg_port)
sed "s/127.0.0.1:$proxy_port\$/127.0.0.1:$p2/; s/127.0.0.1:$admin_port\$/127.0.0.1:$a2/" \
  "$TMP/easgate.yaml" >"$TMP/p2.yaml"
eg_stack -n proxy2 proxy "$TMP/p2.yaml"
for _ in $(seq 50); do
  [ "$(curl -s --max-time 5 "http://127.0.0.1:$a2/metrics" | awk '/^easgate_redis_connected /{print $2}')" = 2 ] && break
  sleep 0.1
done
P=$p2 held NEWQ1 iPhone || eg_fail "enforce: the second proxy does not hold the phone"
# both_reach DEVICE TYPE: it reaches Exchange through each proxy
both_reach() { reaches "$1" "$2" && P=$p2 reaches "$1" "$2"; }
"$EG" core device allow NEWQ1 "${C[@]}" >/dev/null || eg_fail "allow failed"
within 1000 both_reach NEWQ1 iPhone || eg_fail "enforce: 1 s after the allow a proxy still holds the phone"
# The phone still holds the quarantine's key: told to start over, not sent to Exchange.
out=$(P=$p2 ec NEWQ1 iPhone FolderSync "$TMP/fsq.xml")
grep -qi '^X-Exsim' <<<"$out" && eg_fail "released: the quarantine sync key went to Exchange"
grep -q '<Status>9</Status>' <<<"$out" || eg_fail "released: want FolderSync Status 9: $out"
grep -q 'left quarantine' "$TMP/proxy2.log" || eg_fail "released: no log line for the release"
P=$p2 reaches NEWQ1 iPhone || eg_fail "released: starting over with SyncKey 0 did not reach Exchange"
within 3000 has_state ROLL1 quarantine || eg_fail "enforce: the unmanaged phone of the rollout is '$(state ROLL1)'"
eg_pass "enforce: a new phone waits in quarantine (not blocked) on every proxy until the admin allows it, then resyncs through either within 1 s"

agree NEWQ1 iPhone
# An unknown DeviceId: said so, and the hypothetical request still decided.
"$EG" admin --url "http://127.0.0.1:$cport" --token "$TOKEN" devices explain NEVERSEEN9 \
  --type Android9 --version 12.1 >"$TMP/cx.out" 2>&1 || eg_fail "explain of an unknown device failed"
for want in "unknown (not in the registry or Redis)" "decision: quarantine (rule:1)" \
            "answer: FolderSync and Sync: the quarantine notice; other commands: HTTP 403"; do
  grep -qF "$want" "$TMP/cx.out" || eg_fail "unknown explain lacks '$want': $(cat "$TMP/cx.out")"
done
sed "s/^/  /" "$TMP/cx.out"
eg_pass "the core's explain agrees with the live decision (rollout, rule, override, reset, enforce) and explains an unknown DeviceId"

kill -0 "$core_pid" || eg_fail "the core died"
kill -0 "$proxy_pid" || eg_fail "the proxy died"
kill -0 "$proxy2_pid" || eg_fail "the second proxy died"
