#!/usr/bin/env bash
# The server role seen by an independent WBXML implementation: requests
# encoded by Debian's xml2wbxml (libwbxml2), sent with curl, answers decoded
# by wbxml2xml. Provision (both phases, proxy mode), the key check, the
# quarantine notice and the RemoteWipe answer must all be WBXML that
# libwbxml reads. Skips (77) without libwbxml2-utils or curl.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl xml2wbxml wbxml2xml; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate exsim; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
provisioning:
  mode: proxy
  eas_policy: { device_password_enabled: true, min_device_password_length: 8 }
  quarantine_notice:
    en: { subject: "Awaiting approval", body: "Ask IT to approve this phone." }
EOF
eg_stack -w 1
core_set() { # DEVICE STATE VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "" reason test version $3 updated 0
PUBLISH easgate:changed "$1 $3"
EXEC
EOF
}
HDR='<?xml version="1.0"?>
<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">'
# lib CMD DEVICE XML [curl args...]: encode with xml2wbxml, POST, decode the
# answer with wbxml2xml into $out (HTTP status in $code)
lib() {
  local cmd=$1 dev=$2 xml=$3; shift 3
  printf '%s\n%s\n' "$HDR" "$xml" >"$TMP/req.xml"
  xml2wbxml -k -a -n -v 1.3 -o "$TMP/req.wbxml" "$TMP/req.xml" >/dev/null 2>&1 ||
    eg_fail "xml2wbxml refused: $xml"
  code=$(curl -s --max-time 10 -o "$TMP/resp.wbxml" -w '%{http_code}' -X POST \
    -H 'MS-ASProtocolVersion: 14.1' -H 'Content-Type: application/vnd.ms-sync.wbxml' "$@" \
    --data-binary @"$TMP/req.wbxml" \
    "http://127.0.0.1:$proxy_port/Microsoft-Server-ActiveSync?Cmd=$cmd&User=dave&DeviceId=$dev&DeviceType=SmartPhone")
  out=
  if [ -s "$TMP/resp.wbxml" ]; then
    rm -f "$TMP/resp.xml"
    wbxml2xml -k -l ACTIVESYNC -m 0 -o "$TMP/resp.xml" "$TMP/resp.wbxml" >/dev/null 2>&1 ||
      eg_fail "wbxml2xml cannot read the $cmd answer"
    out=$(cat "$TMP/resp.xml")
  fi
}
val() { echo "$out" | sed -n "s/.*<$1>\([^<]*\)<\/$1>.*/\1/p" | head -1; }

# Provision, download then acknowledgement
lib Provision DEVL1 '<Provision xmlns="Provision:"><DeviceInformation xmlns="Settings:"><Set><Model>LibPhone</Model></Set></DeviceInformation><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>'
[ "$code" = 200 ] || eg_fail "download: HTTP $code"
grep -q '<MinDevicePasswordLength>8</MinDevicePasswordLength>' <<<"$out" ||
  eg_fail "download lacks the policy: $out"
tmp=$(val PolicyKey)
lib Provision DEVL1 "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><PolicyKey>$tmp</PolicyKey><Status>1</Status></Policy></Policies></Provision>"
key=$(val PolicyKey)
[ -n "$key" ] && [ "$key" != "$tmp" ] || eg_fail "acknowledgement: no final key: $out"
lib FolderSync DEVL1 '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
[ "$(val Status)" = 142 ] || eg_fail "no key: want 142: $out"
lib FolderSync DEVL1 '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>' \
  -H "X-MS-PolicyKey: $key"
[ "$(val Status)" = 1 ] && ! grep -q EGQ <<<"$out" || eg_fail "final key: want Exchange's FolderSync: $out"
eg_pass "libwbxml: Provision both phases, key check"

# Quarantine: the notice, read by wbxml2xml
core_set DEVL2 quarantine 1
sleep 1.5  # let every worker hear the change (the 1 s bound is test_redis_state's)
lib Sync DEVL2 '<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>EGQ-1</SyncKey><CollectionId>EGQ-inbox</CollectionId></Collection></Collections></Sync>'
grep -q 'Awaiting approval' <<<"$out" || eg_fail "quarantine notice not readable by libwbxml: $out"
grep -q 'Ask IT to approve this phone.' <<<"$out" || eg_fail "notice body: $out"
eg_pass "libwbxml: quarantine notice"

# Wipe: RemoteWipe
core_set DEVL3 wipe 1
sleep 1.5  # let every worker hear the change (the 1 s bound is test_redis_state's)
lib Provision DEVL3 '<Provision xmlns="Provision:"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>'
grep -q '<RemoteWipe' <<<"$out" || eg_fail "no RemoteWipe for libwbxml: $out"
eg_pass "libwbxml: RemoteWipe"

! grep -l "Sanitizer" "$TMP"/*.log 2>/dev/null || eg_fail "sanitizer report in a log"
