#!/usr/bin/env bash
# exsim, the Exchange simulator, answers every route over TLS and plain HTTP:
# OPTIONS headers, each command's WBXML answer (plain and base64 queries),
# SendMail bodies (Content-Length and chunked), Provision in both phases,
# autodiscover, 404, a Ping held for its heartbeat, and a bad request.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$BUILD/exsim" ] || { echo "no $BUILD/exsim"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }

certs=$(eg_certs)
pport=$(eg_port)
eg_exsim --tls --plain-listen "127.0.0.1:$pport" --ping-cap 10 --sync-size 3000
eg_wait_port "$pport"

EAS=/Microsoft-Server-ActiveSync
Q='User=alice&DeviceId=DEV0001&DeviceType=iPhone'
# curl_to URL_BASE PATH [curl args...]: headers to $TMP/h, body to $TMP/b
req() {
  local base=$1 path=$2; shift 2
  curl -sS --max-time 20 --cacert "$certs/ca.crt" -D "$TMP/h" -o "$TMP/b" "$@" "$base$path"
}
hdr() { grep -i "^$1:" "$TMP/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
status() { grep '^HTTP/' "$TMP/h" | tail -1 | awk '{print $2}'; }
is_wbxml() { [ "$(head -c 4 "$TMP/b" | od -An -tx1 | tr -d ' \n')" = "03016a00" ]; }

for base in "https://localhost:$exsim_port" "http://127.0.0.1:$pport"; do
  tls=1; [[ $base == http:* ]] && tls=0

  req "$base" "$EAS" -X OPTIONS
  [ "$(status)" = 200 ] || eg_fail "$base OPTIONS: status $(status)"
  hdr MS-ASProtocolVersions | eg_has '14.1' || eg_fail "$base OPTIONS: no MS-ASProtocolVersions"
  hdr MS-ASProtocolCommands | eg_has 'Ping' || eg_fail "$base OPTIONS: no MS-ASProtocolCommands"
  [ "$(hdr X-Exsim-Tls)" = "$tls" ] || eg_fail "$base: X-Exsim-Tls is not $tls"

  for cmd in FolderSync Sync GetItemEstimate ItemOperations Settings; do
    printf '\x03\x01\x6a\x00' > "$TMP/req"
    req "$base" "$EAS?Cmd=$cmd&$Q" -X POST -H 'MS-ASProtocolVersion: 14.1' \
      -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req"
    [ "$(status)" = 200 ] || eg_fail "$base $cmd: status $(status)"
    [ "$(hdr X-Exsim-Cmd)" = "$cmd" ] || eg_fail "$base $cmd: X-Exsim-Cmd $(hdr X-Exsim-Cmd)"
    [ "$(hdr X-Exsim-User)" = alice ] || eg_fail "$base $cmd: user not echoed"
    [ "$(hdr X-Exsim-DeviceId)" = DEV0001 ] || eg_fail "$base $cmd: device not echoed"
    [ "$(hdr X-Exsim-Query)" = plain ] || eg_fail "$base $cmd: query form not plain"
    [ "$(hdr X-Exsim-Bytes)" = 4 ] || eg_fail "$base $cmd: X-Exsim-Bytes $(hdr X-Exsim-Bytes)"
    hdr Content-Type | eg_has 'application/vnd.ms-sync.wbxml' || eg_fail "$base $cmd: content type"
    is_wbxml || eg_fail "$base $cmd: body is not WBXML"
  done
  # configured size (3000) and per-request size
  req "$base" "$EAS?Cmd=Sync&$Q" -X POST --data-binary @"$TMP/req"
  n=$(stat -c %s "$TMP/b"); [ "$n" -ge 2900 ] && [ "$n" -lt 3200 ] || eg_fail "Sync size $n (asked 3000)"
  req "$base" "$EAS?Cmd=ItemOperations&$Q" -X POST -H 'X-Exsim-Size: 100000' --data-binary @"$TMP/req"
  n=$(stat -c %s "$TMP/b"); [ "$n" -ge 99000 ] && [ "$n" -lt 101000 ] || eg_fail "ItemOperations size $n (asked 100000)"

  # base64 query: Sync, protocol 14.0, device v140Device (MS-ASHTTP example)
  req "$base" "$EAS?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l" -X POST --data-binary @"$TMP/req"
  [ "$(hdr X-Exsim-Query)" = base64 ] || eg_fail "$base: base64 query not recognised"
  [ "$(hdr X-Exsim-Cmd)" = Sync ] && [ "$(hdr X-Exsim-DeviceId)" = v140Device ] &&
    [ "$(hdr X-Exsim-Proto)" = 14.0 ] || eg_fail "$base: base64 query decoded wrongly"

  # SendMail: a 2 MB body, with Content-Length and chunked
  head -c 2000000 /dev/urandom > "$TMP/mime"
  req "$base" "$EAS?Cmd=SendMail&$Q" -X POST -H 'Content-Type: message/rfc822' --data-binary @"$TMP/mime"
  [ "$(status)" = 200 ] && [ "$(hdr X-Exsim-Bytes)" = 2000000 ] || eg_fail "$base SendMail (length)"
  req "$base" "$EAS?Cmd=SendMail&$Q" -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/mime"
  [ "$(status)" = 200 ] && [ "$(hdr X-Exsim-Bytes)" = 2000000 ] || eg_fail "$base SendMail (chunked)"

  # Provision: phase 1 (no PolicyKey) gives the temporary key, phase 2 the final one
  printf '\x03\x01\x6a\x00\x00\x0e\x45\x46\x47\x48\x03MS-EAS-Provisioning-WBXML\x00\x01\x01\x01\x01' > "$TMP/p1"
  req "$base" "$EAS?Cmd=Provision&$Q" -X POST --data-binary @"$TMP/p1"
  grep -aq 3141592653 "$TMP/b" || eg_fail "$base Provision phase 1: no temporary policy key"
  grep -aq MS-EAS-Provisioning-WBXML "$TMP/b" || eg_fail "$base Provision phase 1: no PolicyType"
  printf '\x03\x01\x6a\x00\x00\x0e\x45\x46\x47\x48\x03MS-EAS-Provisioning-WBXML\x00\x01\x49\x033141592653\x00\x01\x4b\x031\x00\x01\x01\x01\x01' > "$TMP/p2"
  req "$base" "$EAS?Cmd=Provision&$Q" -X POST --data-binary @"$TMP/p2"
  grep -aq 2718281828 "$TMP/b" || eg_fail "$base Provision phase 2: no final policy key"

  req "$base" /autodiscover/autodiscover.xml -X POST -d '<Autodiscover/>'
  [ "$(status)" = 200 ] && grep -q MobileSync "$TMP/b" || eg_fail "$base autodiscover"
  req "$base" /owa/ ; [ "$(status)" = 404 ] || eg_fail "$base: unknown path gave $(status)"
  req "$base" "$EAS" -X POST -d x ; [ "$(status)" = 400 ] || eg_fail "$base: no Cmd gave $(status)"
done

# Ping: HeartbeatInterval 2 s in the body -> answered Status 1 after about 2 s
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x032\x00\x01\x01' > "$TMP/ping"
t0=$(date +%s%N)
req "http://127.0.0.1:$pport" "$EAS?Cmd=Ping&$Q" -X POST --data-binary @"$TMP/ping"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 1900 ] && [ "$ms" -lt 5000 ] || eg_fail "Ping with a 2 s heartbeat answered after $ms ms"
[ "$(od -An -tx1 "$TMP/b" | tr -d ' \n')" = "03016a00000d45470331000101" ] ||
  eg_fail "Ping answer is not <Ping><Status>1</Status></Ping>"
# a client that gives up during the hold is forgotten
curl -s -m 0.5 "http://127.0.0.1:$pport$EAS?Cmd=Ping&$Q" -X POST --data-binary @"$TMP/ping" -o /dev/null || true
sleep 0.3
curl -s "http://127.0.0.1:$pport/exsim/stats" > "$TMP/stats"
grep -q '"held":0' "$TMP/stats" || eg_fail "a Ping whose client left is still held: $(cat "$TMP/stats")"

# Bad input: garbage on the wire gets a 400 and no crash
printf 'GARBAGE\r\n\r\n' > "$TMP/garbage"
exec 3<>"/dev/tcp/127.0.0.1/$pport"; cat "$TMP/garbage" >&3; timeout 5 cat <&3 > "$TMP/g" || true; exec 3>&-
grep -q '400' "$TMP/g" || eg_fail "garbage request did not get 400"
kill -0 "$exsim_pid" || eg_fail "exsim died"
eg_pass "exsim routes over TLS and plain, Ping held ${ms} ms"
