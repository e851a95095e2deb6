#!/usr/bin/env bash
# Throttling and errors as Exchange means them (issue 14.6):
#   1. Exchange's throttling answer (503, Retry-After, X-MS-ASThrottle and
#      its body; exsim's X-Exsim-Throttle fault) reaches the phone unchanged,
#      for a FolderSync with a body, an empty Ping and a held-Ping form, and the
#      phone's connection goes on (the url is not marked down: the next
#      request passes);
#   2. the proxy's own 503 (no upstream reachable) says when to come back:
#      Retry-After from upstream.retry_after.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
for b in easgate exsim; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

eg_exsim
PX=$(eg_port)
DEAD=$(eg_port) # nothing listens there
PX2=$(eg_port)
cat >"$TMP/policy.yaml" <<'YAML'
unknown_devices: allow
YAML
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: ex
      listen: 127.0.0.1:$PX
      upstream: { url: "http://127.0.0.1:$exsim_port" }
    - name: dead
      listen: 127.0.0.1:$PX2
      upstream: { url: "http://127.0.0.1:$DEAD", retry_after: 42s }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML
eg_start proxy "$BUILD/easgate" proxy -c "$TMP/easgate.yaml"
eg_wait_port "$PX"

# a valid body: the proxy refuses WBXML that does not decode
echo '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' | "$BUILD/easgate" wbxml encode >"$TMP/fs.wbxml"
EAS=/Microsoft-Server-ActiveSync
Q='User=alice&DeviceId=THR1&DeviceType=iPhone'
H=(-H 'MS-ASProtocolVersion: 14.1' -H 'User-Agent: Apple-iPhone/1')
hdr() { sed -n "s/^$1: *//Ip" "$2" | tr -d '\r'; }

# 1. one connection: throttled FolderSync, throttled empty Ping, then a Sync that passes
curl -s --max-time 10 "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml" -H 'X-Exsim-Throttle: 30' \
  -D "$TMP/h1" -o "$TMP/b1" -w '%{num_connects}\n' "http://127.0.0.1:$PX$EAS?Cmd=FolderSync&$Q" \
  --next -s --max-time 10 "${H[@]}" -X POST -H 'Content-Length: 0' -H 'X-Exsim-Throttle: 7' \
  -D "$TMP/h2" -o "$TMP/b2" -w '%{num_connects}\n' "http://127.0.0.1:$PX$EAS?Cmd=Ping&$Q" \
  --next -s --max-time 10 "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml" \
  -D "$TMP/h3" -o "$TMP/b3" -w '%{num_connects}\n' "http://127.0.0.1:$PX$EAS?Cmd=FolderSync&$Q" >"$TMP/connects"
head -1 "$TMP/h1" | eg_has '^HTTP/1.1 503 Service Unavailable' || eg_fail "throttled FolderSync: $(head -1 "$TMP/h1")"
[ "$(hdr Retry-After "$TMP/h1")" = 30 ] || eg_fail "throttled FolderSync: Retry-After '$(hdr Retry-After "$TMP/h1")', want 30"
[ "$(hdr X-MS-ASThrottle "$TMP/h1")" = CommandFrequency ] || eg_fail "throttled FolderSync: no X-MS-ASThrottle"
[ "$(cat "$TMP/b1")" = "exsim: throttled" ] || eg_fail "throttled FolderSync: body '$(cat "$TMP/b1")'"
[ "$(grep -ci '^Retry-After' "$TMP/h1")" = 1 ] || eg_fail "throttled FolderSync: more than one Retry-After"
head -1 "$TMP/h2" | eg_has '^HTTP/1.1 503' && [ "$(hdr Retry-After "$TMP/h2")" = 7 ] &&
  [ "$(hdr X-MS-ASThrottle "$TMP/h2")" = CommandFrequency ] || eg_fail "throttled empty Ping: $(cat "$TMP/h2")"
head -1 "$TMP/h3" | eg_has '^HTTP/1.1 200' || eg_fail "the FolderSync after the throttled ones: $(head -1 "$TMP/h3")"
[ "$(paste -sd' ' "$TMP/connects")" = "1 0 0" ] ||
  eg_fail "the throttled answers cost the phone its connection (connects per request: $(paste -sd' ' "$TMP/connects"))"
grep -q '"command":"FolderSync".*"status":503,"upstream_status":503' "$TMP/access.log" ||
  eg_fail "access log does not show Exchange's 503: $(cat "$TMP/access.log")"
eg_pass "Exchange's throttling answers (503, Retry-After, X-MS-ASThrottle, body) reach the phone unchanged, on the same connection"

# 2. the proxy's own 503
code=$(curl -s --max-time 10 "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml" -D "$TMP/h4" -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$PX2$EAS?Cmd=FolderSync&$Q")
[ "$code" = 503 ] && [ "$(hdr Retry-After "$TMP/h4")" = 42 ] ||
  eg_fail "upstream unreachable: HTTP $code, Retry-After '$(hdr Retry-After "$TMP/h4")' (want 503, 42)"
code=$(curl -s --max-time 10 "${H[@]}" -X POST -H 'Content-Length: 0' -D "$TMP/h5" -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$PX2$EAS?Cmd=Ping&$Q")
[ "$code" = 503 ] && [ "$(hdr Retry-After "$TMP/h5")" = 42 ] ||
  eg_fail "empty Ping, upstream unreachable: HTTP $code, Retry-After '$(hdr Retry-After "$TMP/h5")'"
eg_pass "the proxy's own 503 carries Retry-After (upstream.retry_after)"
