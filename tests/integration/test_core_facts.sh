#!/usr/bin/env bash
# What a phone says about itself over ActiveSync never outranks an
# authenticated check-in (docs/security.md section 5, issue 12 point 4), end
# to end (redis-server, the Exchange simulator, `easgate proxy`, `easgate core`
# with the admin API, `easgate admin`), with compliance.min_os_version iOS 16
# and no grace period:
#   - a Settings DeviceInformation "iOS 17.1" that Exchange accepted is kept
#     as the device's EAS-reported OS; the authenticated OS stays empty;
#   - once managed, that device is blocked "os-unverified" (the default
#     os_source: authenticated): the phone's own word is not enough;
#   - a check-in with the device token (iOS 17.0) lets it through;
#   - a forged Settings "iOS 9.0" that reaches Exchange is recorded as
#     reported and changes nothing: still compliant, still passing;
#   - a check-in with iOS 15.0 blocks it "os-too-old" whatever EAS said.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl python3 openssl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }
CERTS=$(eg_certs)

cport=$(eg_port)
eg_redis
eg_exsim

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
compliance:
  unmanaged_devices: allow
  min_os_version: { iOS: "16.0" }
  grace_period: 0s
EOF
eg_conf -w 1 - <<EOF
  sighting_interval: 1s
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
AGENT=$("$EG" core token "${C[@]}" --user root --role device --name agent 2>/dev/null)
[[ $ADMIN == egt_* && $AGENT == egt_* ]] || eg_fail "tokens not minted"

eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
eg_stack proxy "$TMP/easgate.yaml"
connected() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" | awk '/^easgate_redis_connected /{print $2}'; }
for _ in $(seq 50); do [ "$(connected)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
[ "$(connected)" -gt 0 ] 2>/dev/null || eg_fail "the proxy is not connected to Redis: $(connected)"

URL="https://127.0.0.1:$cport"
admin() { "$EG" admin --url "$URL" --cacert "$CERTS/ca.crt" "$@"; }
# dev FIELD: one field of the device's JSON from the admin API
dev() {
  curl -s --max-time 10 --cacert "$CERTS/ca.crt" -H "Authorization: Bearer $ADMIN" \
    "$URL/api/v1/devices/FACT0001" | python3 -c "import json,sys; print(json.load(sys.stdin)['device']['$1'])"
}
EAS=/Microsoft-Server-ActiveSync
# settings OS: a Settings request with DeviceInformation claiming OS; sets fwd
settings() {
  echo "<Settings xmlns=\"Settings\"><DeviceInformation><Set><Model>iPhone15,2</Model><OS>$1</OS></Set></DeviceInformation></Settings>" |
    "$EG" wbxml encode >"$TMP/settings.wbxml"
  curl -s --max-time 10 -D "$TMP/h" -o /dev/null -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' -H 'User-Agent: Apple-iPhone15C2/2101.1' \
    --data-binary @"$TMP/settings.wbxml" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=Settings&User=alice@example.com&DeviceId=FACT0001&DeviceType=iPhone" || true
  fwd=0; grep -qi '^X-Exsim-Cmd:' "$TMP/h" && fwd=1
  return 0
}
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
passes() {
  curl -s --max-time 10 -D "$TMP/h2" -o /dev/null -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=FolderSync&User=alice@example.com&DeviceId=FACT0001&DeviceType=iPhone" || true
  grep -qi '^X-Exsim-Cmd:' "$TMP/h2"
}
blocked() { ! passes; }
ms_now() { echo $(($(date +%s%N) / 1000000)); }
within() {
  local ms=$1; shift
  local t0; t0=$(ms_now)
  until "$@"; do
    [ $(($(ms_now) - t0)) -lt "$ms" ] || return 1
    sleep 0.05
  done
}
is() { [ "$(dev "$1" 2>/dev/null)" = "$2" ]; }

# 1. The phone's report is kept as reported, not as the device's OS.
settings "iOS 17.1 21B74"
[ $fwd = 1 ] || eg_fail "the Settings request did not reach Exchange"
within 5000 is eas_os_version 17.1 || eg_fail "the reported OS was not recorded: $(dev eas_os_version 2>&1)"
[ "$(dev eas_os)" = iOS ] || eg_fail "eas_os: $(dev eas_os)"
[ -z "$(dev os)" ] && [ -z "$(dev os_version)" ] || eg_fail "a sighting wrote the authenticated OS: $(dev os) $(dev os_version)"
admin --token "$ADMIN" devices show FACT0001 | eg_has "^eas_os_version *17.1" ||
  eg_fail "devices show does not print the reported OS"
eg_pass "DeviceInformation from ActiveSync is recorded as eas_os, apart from the authenticated OS"

# 2. Managed, only the phone's word: os-unverified, blocked.
admin --token "$ADMIN" devices manage FACT0001 >/dev/null || eg_fail "manage failed"
within 3000 is reason os-unverified || eg_fail "managed with only a reported OS: $(dev reason)"
within 1000 blocked || eg_fail "an os-unverified device still passes"
eg_pass "a managed device with only an EAS-reported OS is blocked (os-unverified)"

# 3. An authenticated check-in decides.
admin --token "$AGENT" checkin FACT0001 --os iOS --os-version 17.0 | eg_has "FACT0001: allow" ||
  eg_fail "a check-in with iOS 17.0 did not allow"
within 1000 passes || eg_fail "the checked-in device does not pass"

# 4. A forged report that reaches Exchange is recorded and ignored (after
#    the sighting interval: the proxy reports each kind once per interval).
sleep 1.2
settings "iOS 9.0"
[ $fwd = 1 ] || eg_fail "the forged Settings request did not reach Exchange"
within 5000 is eas_os_version 9.0 || eg_fail "the forged report was not recorded"
sleep 0.5
[ "$(dev reason)" = compliant ] || eg_fail "a forged EAS report changed compliance: $(dev reason)"
passes || eg_fail "a forged EAS report blocked a compliant device"
eg_pass "a forged DeviceInformation (iOS 9.0) does not override the check-in (iOS 17.0)"

# 5. ... and the check-in's word goes the other way too.
admin --token "$AGENT" checkin FACT0001 --os iOS --os-version 15.0 >/dev/null || eg_fail "check-in failed"
within 3000 is reason os-too-old || eg_fail "a check-in with iOS 15.0: $(dev reason)"
within 1000 blocked || eg_fail "an os-too-old device still passes"
grep -q "Sanitizer" "$TMP/core.log" "$TMP/proxy.log" && eg_fail "sanitizer report"
eg_pass "the check-in's OS (15.0) blocks whatever EAS reported"
