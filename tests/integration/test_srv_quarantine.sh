#!/usr/bin/env bash
# Quarantine and release, driven by build/easclient against the real proxy,
# redis-server and exsim (the test plays the core with redis-cli):
#   - passthrough mode: a quarantined device's Provision goes to Exchange;
#   - a quarantined device gets our own Inbox (FolderSync) and one notice
#     message in it (Sync), in the language of Accept-Language, English
#     otherwise; nothing reaches Exchange; other commands are refused (129);
#   - the state becomes allow: FolderSync with a quarantine key gets Status 9,
#     the phone starts over with SyncKey 0 and reaches Exchange;
#   - a Sync body that is not WBXML gets Status 102 and changes nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
provisioning:
  mode: passthrough
  quarantine_notice:
    en: { subject: "Device waiting for approval", body: "Call the help desk on 1234." }
    de: { subject: "Gerät wartet auf Freigabe", body: "Bitte Helpdesk 1234 anrufen." }
EOF
eg_stack
core_set() { # DEVICE STATE VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "" reason test version $3 updated 0
PUBLISH easgate:changed "$1 $3"
EXEC
EOF
}
EC() { "$BUILD/easclient" --url "http://127.0.0.1:$proxy_port" --user bob --device DEVQ1 "$@"; }
fs() { printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>%s</SyncKey></FolderSync>' "$1" >"$TMP/fs.xml"; }
sy() {
  printf '<Sync xmlns="AirSync"><Collections><Collection><SyncKey>%s</SyncKey><CollectionId>%s</CollectionId></Collection></Collections></Sync>' \
    "$1" "$2" >"$TMP/sy.xml"
}
core_set DEVQ1 quarantine 1
sleep 1.5  # let every worker hear the change (the 1 s bound is test_redis_state's)

# 0. passthrough: the quarantined phone provisions with Exchange (else a
# phone that provisions first would never see the notice)
printf '<Provision xmlns="Provision"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>' >"$TMP/prov.xml"
out=$(EC --show-headers Provision "$TMP/prov.xml")
grep -qi '^X-Exsim-Cmd: Provision' <<<"$out" || eg_fail "quarantined Provision (passthrough) did not reach Exchange: $out"
grep -q '<PolicyKey>' <<<"$out" || eg_fail "quarantined Provision: no policy from Exchange: $out"
grep -q '"command":"Provision".*"decision":"quarantine","reason":"quarantine-provision"' "$TMP/access.log" ||
  eg_fail "access log: no quarantine-provision line"
eg_pass "quarantine, passthrough mode: Provision goes to Exchange"

# 1. FolderSync 0: our Inbox, nothing from Exchange
fs 0
out=$(EC --show-headers FolderSync "$TMP/fs.xml")
grep -qi '^X-Exsim' <<<"$out" && eg_fail "quarantined FolderSync reached Exchange"
grep -q '<ServerId>EGQ-inbox</ServerId>' <<<"$out" || eg_fail "no quarantine Inbox: $out"
grep -q '<Type>2</Type>' <<<"$out" || eg_fail "quarantine folder is not an Inbox: $out"
fkey=$(echo "$out" | sed -n 's/.*<SyncKey>\(.*\)<\/SyncKey>.*/\1/p')
[ "$fkey" = "EGQ-1" ] || eg_fail "FolderSync key $fkey"
# 2. Sync 0 then Sync EGQ-1: one notice message (German by Accept-Language)
sy 0 EGQ-inbox
out=$(EC Sync "$TMP/sy.xml")
grep -q '<SyncKey>EGQ-1</SyncKey>' <<<"$out" || eg_fail "Sync 0: $out"
sy EGQ-1 EGQ-inbox
out=$(EC --show-headers --header "Accept-Language: de-DE,de;q=0.9" Sync "$TMP/sy.xml")
grep -qi '^X-Exsim' <<<"$out" && eg_fail "quarantined Sync reached Exchange"
grep -q 'Gerät wartet auf Freigabe' <<<"$out" || eg_fail "no German notice: $out"
[ "$(echo "$out" | grep -c '<Add>')" = 1 ] || eg_fail "want exactly one message: $out"
out=$(EC Sync "$TMP/sy.xml")
grep -q 'Device waiting for approval' <<<"$out" || eg_fail "no English notice by default: $out"
grep -q 'help desk on 1234' <<<"$out" || eg_fail "notice body missing: $out"
sy EGQ-2 EGQ-inbox
out=$(EC Sync "$TMP/sy.xml")
grep -q '<Add>' <<<"$out" && eg_fail "the notice came twice: $out"
grep -q '<Status>1</Status>' <<<"$out" || eg_fail "Sync EGQ-2: $out"
eg_pass "quarantine: own Inbox, one notice per language, nothing from Exchange"

# 3. other commands refused; junk Sync body
printf '<Ping xmlns="Ping"><HeartbeatInterval>60</HeartbeatInterval></Ping>' >"$TMP/ping.xml"
out=$(EC --show-headers Ping "$TMP/ping.xml")
grep -qi '^X-Exsim' <<<"$out" && eg_fail "quarantined Ping reached Exchange"
grep -q '<Status>129</Status>' <<<"$out" || eg_fail "quarantined Ping: want 129: $out"
printf 'garbage' >"$TMP/junk"
out=$(EC --raw "$TMP/junk" Sync)
grep -q '<Status>102</Status>' <<<"$out" || eg_fail "junk Sync: want 102: $out"
eg_pass "quarantine: Ping refused (129), junk Sync 102"

# 4. release: the quarantine key gets Status 9, SyncKey 0 reaches Exchange
core_set DEVQ1 allow 2
sleep 1.5  # let every worker hear the change (the 1 s bound is test_redis_state's)
fs EGQ-1
out=$(EC --show-headers FolderSync "$TMP/fs.xml")
grep -qi '^X-Exsim' <<<"$out" && eg_fail "a quarantine sync key went to Exchange"
grep -q '<Status>9</Status>' <<<"$out" || eg_fail "released: want FolderSync Status 9: $out"
fs 0
out=$(EC --show-headers FolderSync "$TMP/fs.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "released: FolderSync 0 did not reach Exchange"
grep -q 'EGQ' <<<"$out" && eg_fail "Exchange's hierarchy mentions quarantine ids"
grep -q 'left quarantine' "$TMP/proxy.log" || eg_fail "no log line for the release"
eg_pass "release: FolderSync Status 9, then a clean resync from Exchange"

! grep -l "Sanitizer" "$TMP"/*.log 2>/dev/null || eg_fail "sanitizer report in a log"
