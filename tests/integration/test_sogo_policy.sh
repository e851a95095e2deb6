#!/usr/bin/env bash
# What easgate decides, with a real ActiveSync server behind it (issue 14,
# point 4): SOGo 5.8 (tests/integration/sogo.sh), a real redis-server, the
# test playing the core with redis-cli (HSET + PUBLISH), build/easclient as
# the phone. Two proxies in front of the same SOGo:
#   A. provisioning passthrough, unknown_devices: allow
#      - an unknown device syncs with SOGo;
#      - a blocked device gets 129 and nothing of SOGo;
#      - a Ping held by SOGo is cut within 1 s when the device is blocked;
#      - a quarantined device provisions with SOGo, then gets easgate's
#        Inbox and the notice, and its other commands are refused;
#      - a device to wipe gets 140, and RemoteWipe in its Provision;
#   B. provisioning proxy, unknown_devices: block
#      - an unknown device gets 129, nothing reaches SOGo;
#      - an allowed device without a policy key gets 142, provisions with
#        easgate (SOGo has no device policies), and with the key syncs with
#        SOGo;
#      - a quarantined device provisions with easgate and sees the notice.
# Skips (77) when the SOGo environment is not installed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sogo.sh"
if ! why=$(sogo_missing); then
  echo "SKIP: $why"
  exit 77
fi
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

SOGO_PING_MAX=30 # a held Ping stays held long enough to be cut
sogo_up
eg_redis

PA=$(eg_port)
PB=$(eg_port)
proxy_conf() { # NAME PORT POLICY-YAML
  cat >"$TMP/$1.policy.yaml"
  cat >"$TMP/$1.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: $1
      listen: 127.0.0.1:$2
      upstream: { url: "$SOGO_URL" }
policy: $TMP/$1.policy.yaml
log: { access: "$TMP/$1.access.log", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
  sighting_interval: 1h
YAML
  eg_start "px_$1" "$BUILD/easgate" proxy -c "$TMP/$1.yaml"
  eg_wait_port "$2"
}
proxy_conf pass "$PA" <<'YAML'
unknown_devices: allow
provisioning:
  mode: passthrough
  quarantine_notice:
    en: { subject: "Device waiting for approval", body: "Call the help desk on 1234." }
YAML
proxy_conf prov "$PB" <<'YAML'
unknown_devices: block
provisioning:
  mode: proxy
  eas_policy: { device_password_enabled: true, min_device_password_length: 6 }
YAML

core_set() { # DEVICE STATE VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "" reason test version $3 updated 0
PUBLISH easgate:changed "$1 $3"
EXEC
EOF
}
EC() { # PORT DEVICE ARGS...
  local port=$1 dev=$2
  shift 2
  "$BUILD/easclient" --url "http://127.0.0.1:$port" --user alice --password alicepw --device "$dev" "$@"
}
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
sogo_folders() { grep -q 'Personal Calendar' <<<"$1"; } # SOGo's hierarchy, not easgate's
ms_now() { echo $(($(date +%s%N) / 1000000)); }

# A1. unknown device, unknown_devices: allow: SOGo answers
out=$(EC "$PA" SGUNKNOWN1 FolderSync "$TMP/fs.xml")
sogo_folders "$out" || eg_fail "unknown device (allow): no SOGo folders: $out"
eg_pass "unknown_devices: allow: an unknown device syncs with SOGo"

# A2. blocked
core_set SGBLOCK1 block 1
sleep 0.3
out=$(EC "$PA" SGBLOCK1 FolderSync "$TMP/fs.xml")
grep -q '<Status>129</Status>' <<<"$out" && ! sogo_folders "$out" || eg_fail "blocked device: $out"
eg_pass "a blocked device gets 129, nothing of SOGo"

# A3. a Ping held by SOGo, cut by a block
printf 'foldersync\nping 25 INBOX\n' >"$TMP/ping.session"
EC "$PA" SGPING1 session "$TMP/ping.session" >"$TMP/ping.out" 2>&1 &
ping_pid=$!
for _ in $(seq 100); do
  grep -q '"command":"FolderSync".*"device_id":"SGPING1"\|"device_id":"SGPING1".*"command":"FolderSync"' "$TMP/pass.access.log" 2>/dev/null && break
  sleep 0.1
done
sleep 1.5 # the Ping is out and held by SOGo (it holds up to 25 s)
kill -0 $ping_pid 2>/dev/null || eg_fail "the Ping was not held: $(cat "$TMP/ping.out")"
t0=$(ms_now)
core_set SGPING1 block 1
for _ in $(seq 100); do kill -0 $ping_pid 2>/dev/null || break; sleep 0.01; done
cut=$(($(ms_now) - t0))
wait $ping_pid || true
grep -q 'ping heartbeat=25 INBOX: HTTP 200 wbxml Status=129' "$TMP/ping.out" ||
  eg_fail "held Ping not answered blocked: $(cat "$TMP/ping.out")"
[ $cut -lt 1000 ] || eg_fail "held Ping cut $cut ms after the block (want < 1000)"
eg_pass "a Ping held by SOGo is cut $cut ms after the block, answered 129"

# A4. quarantine, passthrough: Provision goes to SOGo, then the notice
core_set SGQUAR1 quarantine 1
sleep 0.3
out=$(EC "$PA" SGQUAR1 provision 2>&1) || true
grep -q '"device_id":"SGQUAR1".*"decision":"quarantine","reason":"quarantine-provision"' "$TMP/pass.access.log" ||
  eg_fail "quarantined Provision did not go to SOGo: $out"
grep -q '"device_id":"SGQUAR1".*"command":"Provision".*"upstream_status":200' "$TMP/pass.access.log" ||
  eg_fail "SOGo did not answer the quarantined Provision"
out=$(EC "$PA" SGQUAR1 FolderSync "$TMP/fs.xml")
grep -q '<ServerId>EGQ-inbox</ServerId>' <<<"$out" && ! sogo_folders "$out" || eg_fail "quarantine FolderSync: $out"
sy() { printf '<Sync xmlns="AirSync"><Collections><Collection><SyncKey>%s</SyncKey><CollectionId>EGQ-inbox</CollectionId></Collection></Collections></Sync>' "$1" >"$TMP/sy.xml"; }
sy 0
EC "$PA" SGQUAR1 Sync "$TMP/sy.xml" >/dev/null
sy EGQ-1
out=$(EC "$PA" SGQUAR1 Sync "$TMP/sy.xml")
grep -q 'Device waiting for approval' <<<"$out" || eg_fail "no notice: $out"
printf '<ItemOperations xmlns="ItemOperations"><Fetch><Store>Mailbox</Store></Fetch></ItemOperations>' >"$TMP/io.xml"
out=$(EC "$PA" SGQUAR1 ItemOperations "$TMP/io.xml")
grep -q '<Status>129</Status>' <<<"$out" || eg_fail "quarantined ItemOperations not refused: $out"
eg_pass "quarantine (passthrough): Provision with SOGo, then easgate's Inbox and notice, the rest refused"

# A5. remote wipe
core_set SGWIPE1 wipe 1
sleep 0.3
out=$(EC "$PA" SGWIPE1 FolderSync "$TMP/fs.xml")
grep -q '<Status>140</Status>' <<<"$out" || eg_fail "wipe: want 140: $out"
rc=0
out=$(EC "$PA" SGWIPE1 provision) || rc=$?
[ $rc = 2 ] && grep -q '<RemoteWipe' <<<"$out" || eg_fail "wipe: no RemoteWipe in Provision ($rc): $out"
eg_pass "remote wipe: 140, then RemoteWipe in the Provision answer"

# B1. unknown device, unknown_devices: block
out=$(EC "$PB" SGUNKNOWN2 FolderSync "$TMP/fs.xml")
grep -q '<Status>129</Status>' <<<"$out" && ! sogo_folders "$out" || eg_fail "unknown device (block): $out"
eg_pass "unknown_devices: block: an unknown device gets 129"

# B2. provisioning by easgate in front of SOGo
core_set SGPROV1 allow 1
sleep 0.3
out=$(EC "$PB" SGPROV1 FolderSync "$TMP/fs.xml")
grep -q '<Status>142</Status>' <<<"$out" || eg_fail "no policy key: want 142: $out"
out=$(EC "$PB" SGPROV1 provision) || eg_fail "provision with easgate failed: $out"
key=$(sed -n 's/^policy_key=//p' <<<"$out")
[ -n "$key" ] || eg_fail "no policy key from easgate: $out"
out=$(EC "$PB" SGPROV1 --policy-key "$key" FolderSync "$TMP/fs.xml")
sogo_folders "$out" || eg_fail "with easgate's policy key: no SOGo folders: $out"
eg_pass "provisioning by easgate (mode proxy): 142, the key, then SOGo's folders"

# B3. quarantine, proxy mode
core_set SGQUAR2 quarantine 1
sleep 0.3
out=$(EC "$PB" SGQUAR2 provision) || eg_fail "quarantined provision (proxy mode) failed: $out"
out=$(EC "$PB" SGQUAR2 FolderSync "$TMP/fs.xml")
grep -q '<ServerId>EGQ-inbox</ServerId>' <<<"$out" || eg_fail "quarantine FolderSync (proxy mode): $out"
eg_pass "quarantine (proxy mode): easgate provisions, then its Inbox"

echo "SOGo came up in ${SOGO_UP_MS} ms"
