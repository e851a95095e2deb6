#!/usr/bin/env bash
# ActiveSync decisions that need more than the query: DeviceInformation read
# from a Settings body drives a device rule (quarantine), Provision is read
# and forwarded intact, OPTIONS follows the user-agent lists, EWS push
# subscriptions pass when the policy allows them (and nothing else does),
# and an upstream that never answers a Ping gets the client a 504 after
# heartbeat + margin instead of a hang.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim --tls
PX=$(eg_port)

cat > "$TMP/policy.yaml" <<YAML
unknown_devices: allow
user_agents:
  allow: ["Apple-iPhone*", "Android-Mail*"]
device_rules:
  - match: { device_os: "Android 9*" }
    action: quarantine
ews: { allow_subscriptions: true }
YAML
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  timeouts: { long_poll_margin: 0s }
  limits: { max_heartbeat: 1s }
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML

eg_stack proxy "$TMP/easgate.yaml"

EAS="/Microsoft-Server-ActiveSync"
C=(curl -s --max-time 20 --cacert "$CERTS/ca.crt")
UA=(-H 'User-Agent: Android-Mail/9' -H 'MS-ASProtocolVersion: 14.1' -H 'Content-Type: application/vnd.ms-sync.wbxml')
wb() { "$BUILD/easgate" wbxml encode > "$1"; }

# 1. Settings with DeviceInformation OS "Android 9.0": rule 1 quarantines it
echo '<Settings xmlns="Settings"><DeviceInformation><Set><Model>Pixel 3</Model><OS>Android 9.0</OS></Set></DeviceInformation></Settings>' | wb "$TMP/settings9.wbxml"
out=$("${C[@]}" -D "$TMP/h1" -o "$TMP/b1" -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Settings&User=bob&DeviceId=DROID9&DeviceType=Android" \
  "${UA[@]}" --data-binary @"$TMP/settings9.wbxml")
[ "$out" = 200 ] || eg_fail "Settings (Android 9): HTTP $out"
grep -qi '^X-Exsim' "$TMP/h1" && eg_fail "quarantined Settings reached exsim"
xxd -p "$TMP/b1" | tr -d '\n' | eg_has "03313239" || eg_fail "quarantined Settings: no Status 129: $(xxd -p "$TMP/b1")"
grep -q '"command":"Settings".*"decision":"quarantine","reason":"rule:1"' "$TMP/access.log" || eg_fail "no quarantine rule:1 in the access log"
eg_pass "Settings DeviceInformation drives a device rule (quarantine)"

# 2. the same with Android 13 passes, and exsim gets the body intact
echo '<Settings xmlns="Settings"><DeviceInformation><Set><Model>Pixel 7</Model><OS>Android 13</OS></Set></DeviceInformation></Settings>' | wb "$TMP/settings13.wbxml"
out=$("${C[@]}" -D "$TMP/h2" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Settings&User=bob&DeviceId=DROID13&DeviceType=Android" \
  "${UA[@]}" --data-binary @"$TMP/settings13.wbxml")
[ "$out" = 200 ] || eg_fail "Settings (Android 13): HTTP $out"
got=$(awk 'tolower($1)=="x-exsim-bytes:" {print $2}' "$TMP/h2" | tr -d '\r')
[ "$got" = "$(stat -c %s "$TMP/settings13.wbxml")" ] || eg_fail "Settings body: exsim saw $got bytes"
eg_pass "Settings read by the proxy and forwarded intact"

# 3. Provision (read for DeviceInformation) passes
echo '<Provision xmlns="Provision"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>' | wb "$TMP/prov.wbxml"
out=$("${C[@]}" -D "$TMP/h3" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Provision&User=bob&DeviceId=DROID13&DeviceType=Android" \
  "${UA[@]}" --data-binary @"$TMP/prov.wbxml")
[ "$out" = 200 ] && grep -qi '^X-Exsim-Cmd: Provision' "$TMP/h3" || eg_fail "Provision: HTTP $out"
eg_pass "Provision passes"

# 4. OPTIONS: allowed user agent reaches exsim, others get 403
out=$("${C[@]}" -D "$TMP/h4" -o /dev/null -w '%{http_code}' -X OPTIONS "https://localhost:$PX$EAS" -H 'User-Agent: Apple-iPhone/1')
[ "$out" = 200 ] && grep -qi '^MS-ASProtocolVersions' "$TMP/h4" || eg_fail "OPTIONS allowed: HTTP $out"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X OPTIONS "https://localhost:$PX$EAS" -H 'User-Agent: SomeApp/1')
[ "$out" = 403 ] || eg_fail "OPTIONS other agent: HTTP $out"
eg_pass "OPTIONS follows the user-agent lists"

# 5. EWS: a Subscribe passes (exsim has no EWS: its 404 shows it got there),
#    anything else is 403
SUB='<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Subscribe xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"/></soap:Body></soap:Envelope>'
FIND='<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:FindItem xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"/></soap:Body></soap:Envelope>'
out=$("${C[@]}" -D "$TMP/h5" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX/EWS/Exchange.asmx" -H 'Content-Type: text/xml' --data-binary "$SUB")
grep -qi '^X-Exsim' "$TMP/h5" || eg_fail "EWS Subscribe did not reach the upstream (HTTP $out)"
out=$("${C[@]}" -D "$TMP/h6" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX/EWS/Exchange.asmx" -H 'Content-Type: text/xml' --data-binary "$FIND")
[ "$out" = 403 ] || eg_fail "EWS FindItem: HTTP $out"
eg_pass "EWS: subscriptions pass, other operations 403"

# 6. a Ping the upstream never answers: 504 after heartbeat (capped at 1 s) + margin 0
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x36\x30\x00\x01\x01' > "$TMP/ping.wbxml"
t0=$(date +%s%N)
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Ping&User=bob&DeviceId=DROID13&DeviceType=Android" \
  "${UA[@]}" -H 'X-Exsim-Hold-Ms: 10000' --data-binary @"$TMP/ping.wbxml")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$out" = 504 ] || eg_fail "silent upstream: HTTP $out"
[ "$ms" -ge 900 ] && [ "$ms" -lt 4000 ] || eg_fail "504 after $ms ms, expected about 1000"
eg_pass "upstream silent past heartbeat + margin: 504 after $ms ms"

eg_stop_clean proxy
eg_pass "clean exit"
