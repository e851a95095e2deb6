#!/usr/bin/env bash
# Approving a pending device under a strict policy (issue 17,
# docs/access-model.md "Approving a pending device"), with redis-server,
# exsim, `easgate proxy` and `easgate core` with its admin API:
#   - with unknown_devices: block, a phone the proxy turns away waits in
#     the pending table;
#   - `easgate admin pending approve ID` (the default) registers it as
#     unmanaged: under this policy it stays blocked;
#   - `easgate admin pending approve ID --allow` registers it with an admin
#     allow override (who and when recorded, as `devices allow`): the phone
#     reaches Exchange within 1 s, and `reset` takes it back to blocked.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
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
TOKEN=$("$EG" core token "${C[@]}" --user root --role admin 2>/dev/null)
A=(--url "http://127.0.0.1:$cport" --token "$TOKEN")
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
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
ec() { "$BUILD/easclient" --url "http://127.0.0.1:$proxy_port" --user bob --device "$1" --type iPhone \
  --show-headers FolderSync "$TMP/fs.xml" 2>&1 || true; }
reaches() { ec "$1" | grep -qi '^X-Exsim-Cmd: FolderSync'; }
pending() { "$EG" admin "${A[@]}" pending | grep -q "^$1 "; }

# 1. Two phones the strict proxy turns away: both pending, neither registered.
for d in APPR1 APPR2; do
  reaches $d && eg_fail "$d reached Exchange under unknown_devices: block"
done
within 5000 pending APPR2 || eg_fail "the turned-away phone is not pending"
pending APPR1 || eg_fail "APPR1 is not pending"
[ "$(R EXISTS easgate:dev:APPR1)" = 0 ] || eg_fail "a pending device has a Redis key"
eg_pass "under unknown_devices: block a turned-away phone waits in pending"

# 2. The default approval registers it unmanaged: still blocked.
"$EG" admin "${A[@]}" pending approve APPR1 --user bob >"$TMP/a1.out" 2>&1 ||
  eg_fail "approve failed: $(cat "$TMP/a1.out")"
grep -q "^APPR1: approved, registered: block (unmanaged), user bob" "$TMP/a1.out" ||
  eg_fail "the default approval said: $(cat "$TMP/a1.out")"
sleep 1
reaches APPR1 && eg_fail "an approved (unmanaged) phone reached Exchange under unknown_devices: block"
eg_pass "approve without --allow registers the phone unmanaged: blocked under this policy"

# 3. --allow: an admin allow override, recorded, at the proxy within 1 s.
"$EG" admin "${A[@]}" pending approve APPR2 --user bob --allow --note "help desk ticket 42" \
  >"$TMP/a2.out" 2>&1 || eg_fail "approve --allow failed: $(cat "$TMP/a2.out")"
grep -q "^APPR2: approved, registered: allow (admin-allow), user bob" "$TMP/a2.out" ||
  eg_fail "approve --allow said: $(cat "$TMP/a2.out")"
within 1000 reaches APPR2 || eg_fail "1 s after approve --allow the phone is still blocked"
pending APPR2 && eg_fail "an approved device is still pending"
"$EG" admin "${A[@]}" devices show APPR2 | grep -q "^override  *allow" ||
  eg_fail "admin devices show does not say the override: $("$EG" admin "${A[@]}" devices show APPR2)"
show=$("$EG" core device show APPR2 "${C[@]}")
grep -q "allow .*root.*help desk ticket 42" <<<"$show" || eg_fail "show lacks who/note of the allow: $show"
audit=$("$EG" admin "${A[@]}" audit --target APPR2)
grep -q "device.approve" <<<"$audit" || eg_fail "the approval is not audited: $audit"
grep -q "device.allow" <<<"$audit" || eg_fail "the allow is not audited: $audit"
eg_pass "approve --allow: an admin allow override (who, note, audit), at the proxy within 1 s"

# 4. reset removes the override: the policy blocks it again.
"$EG" admin "${A[@]}" devices reset APPR2 >/dev/null || eg_fail "reset failed"
within 1000 eval '! reaches APPR2' || eg_fail "1 s after reset the phone still reaches Exchange"
eg_pass "reset hands the approved phone back to the policy (blocked)"

# Bad input: allow must be a boolean.
code=$(curl -s -o "$TMP/bad.out" -w "%{http_code}" -X POST -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{"allow":"yes"}' "http://127.0.0.1:$cport/api/v1/pending/APPR3/approve")
[ "$code" = 400 ] || eg_fail "allow as a string: HTTP $code, want 400: $(cat "$TMP/bad.out")"
kill -0 "$core_pid" || eg_fail "the core died"
eg_pass "a non-boolean allow is refused (400)"
