#!/usr/bin/env bash
# A server under a path (issue 14.3): exsim --prefix /SOGo serves only
# /SOGo/Microsoft-Server-ActiveSync, /SOGo/autodiscover/... like SOGo.
#   1. upstream.url http://HOST:PORT/SOGo: ActiveSync, autodiscover and EWS
#      requests go under the prefix, the client's query and trailing slash
#      kept; `easgate check` prints the effective paths;
#   2. the server's redirects under the prefix come back as the client's
#      paths; a redirect elsewhere is left alone;
#   3. upstream.paths overrides one route (activesync) and leaves the others
#      at the url's (here: no) prefix;
#   4. hostile targets never reach anything but the mapped paths: dot
#      segments, encoded slashes, double slashes, an absolute form naming
#      another host, a path that only starts like the route.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
for b in easgate exsim; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

eg_exsim --prefix /SOGo
PX=$(eg_port)
PX2=$(eg_port)
cat >"$TMP/policy.yaml" <<'YAML'
unknown_devices: allow
ews: { allow_subscriptions: true }
YAML
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: sogo
      listen: 127.0.0.1:$PX
      upstream: { url: "http://127.0.0.1:$exsim_port/SOGo/" }
    - name: override
      listen: 127.0.0.1:$PX2
      upstream:
        url: "http://127.0.0.1:$exsim_port"
        paths: { activesync: /SOGo/Microsoft-Server-ActiveSync }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML
"$BUILD/easgate" check -c "$TMP/easgate.yaml" >"$TMP/check.out" 2>&1 || eg_fail "check: $(cat "$TMP/check.out")"
grep -q "activesync: /SOGo/Microsoft-Server-ActiveSync" "$TMP/check.out" &&
  grep -q "autodiscover: /SOGo/autodiscover/autodiscover.xml" "$TMP/check.out" &&
  grep -q "ews: /SOGo/EWS" "$TMP/check.out" &&
  grep -q "autodiscover: /autodiscover/autodiscover.xml" "$TMP/check.out" ||
  eg_fail "easgate check does not print the effective paths: $(cat "$TMP/check.out")"
eg_pass "easgate check prints each route's path on the server"
eg_start proxy "$BUILD/easgate" proxy -c "$TMP/easgate.yaml"
eg_wait_port "$PX"

# a valid body: the proxy refuses WBXML that does not decode
echo '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' | "$BUILD/easgate" wbxml encode >"$TMP/fs.wbxml"
H=(-H 'MS-ASProtocolVersion: 14.1' -H 'User-Agent: Apple-iPhone/1')
Q='Cmd=FolderSync&User=alice&DeviceId=PFX1&DeviceType=iPhone'
req() { # PORT TARGET [curl args]: status in $code, headers in $TMP/h
  local port=$1 target=$2
  shift 2
  code=$(curl -s --max-time 10 --path-as-is -o "$TMP/b" -D "$TMP/h" -w '%{http_code}' "$@" \
    "http://127.0.0.1:$port$target" || true)
}
hdr() { sed -n "s/^$1: *//Ip" "$TMP/h" | tr -d '\r'; }

# 1. under the prefix
req "$PX" "/Microsoft-Server-ActiveSync?$Q" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml"
[ "$code" = 200 ] && [ "$(hdr X-Exsim-Cmd)" = FolderSync ] || eg_fail "ActiveSync under /SOGo: HTTP $code $(cat "$TMP/b")"
req "$PX" "/microsoft-server-activesync?$Q" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml"
[ "$code" = 200 ] && [ "$(hdr X-Exsim-Cmd)" = FolderSync ] || eg_fail "lower case: HTTP $code"
req "$PX" "/Microsoft-Server-ActiveSync" -X OPTIONS "${H[@]}"
[ "$code" = 200 ] && hdr MS-ASProtocolVersions | eg_has 14.1 || eg_fail "OPTIONS under /SOGo: HTTP $code"
req "$PX" "/autodiscover/autodiscover.xml" -X POST --data-binary '<x/>'
[ "$code" = 200 ] && grep -q MobileSync "$TMP/b" || eg_fail "autodiscover under /SOGo: HTTP $code"
eg_pass "ActiveSync, OPTIONS and autodiscover reach the server under its prefix"

# 2. redirects come back as the client's paths
req "$PX" "/Microsoft-Server-ActiveSync?$Q" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml" \
  -H 'X-Exsim-Redirect: /Microsoft-Server-ActiveSync?Cmd=Sync'
[ "$code" = 302 ] && [ "$(hdr Location)" = "/Microsoft-Server-ActiveSync?Cmd=Sync" ] ||
  eg_fail "redirect under the prefix: HTTP $code Location '$(hdr Location)'"
req "$PX" "/Microsoft-Server-ActiveSync?$Q" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml" -H 'X-Exsim-Redirect: /so/login'
[ "$(hdr Location)" = "/so/login" ] || eg_fail "redirect to another page under the prefix: '$(hdr Location)'"
# (a Location naming another host stays as it was: tests/unit/test_proxy_head.c)
req "$PX" "/autodiscover/autodiscover.xml" -X POST --data-binary '<x/>' -H 'X-Exsim-Redirect: /a'
[ "$(hdr Location)" = "/a" ] || eg_fail "autodiscover redirect: '$(hdr Location)'"
eg_pass "the server's redirects under its prefix come back as the client's paths"

# 3. paths: only activesync moved
req "$PX2" "/Microsoft-Server-ActiveSync?$Q" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml"
[ "$code" = 200 ] && [ "$(hdr X-Exsim-Cmd)" = FolderSync ] || eg_fail "paths.activesync: HTTP $code"
req "$PX2" "/autodiscover/autodiscover.xml" -X POST --data-binary '<x/>'
[ "$code" = 404 ] && grep -q "not under the prefix" "$TMP/b" ||
  eg_fail "autodiscover should go to the server's root (exsim: 404): HTTP $code $(cat "$TMP/b")"
eg_pass "upstream.paths moves one route and leaves the others"

# 4. hostile targets
for t in "/Microsoft-Server-ActiveSync/../../etc/passwd?$Q" "/Microsoft-Server-ActiveSync/..?$Q" \
  "/Microsoft-Server-ActiveSync%2F..%2F?$Q" "//Microsoft-Server-ActiveSync?$Q" \
  "/SOGo/Microsoft-Server-ActiveSync?$Q" "/Microsoft-Server-ActiveSyncX?$Q" \
  "/./Microsoft-Server-ActiveSync?$Q" "/EWS/../Microsoft-Server-ActiveSync?$Q" \
  "/EWS/%2e%2e/x" "/autodiscover/autodiscover.xml/../../x"; do
  req "$PX" "$t" "${H[@]}" -X POST --data-binary @"$TMP/fs.wbxml"
  [ "$code" = 404 ] || [ "$code" = 403 ] || [ "$code" = 400 ] || eg_fail "target '$t': HTTP $code (want 400/403/404)"
  grep -qi '^X-Exsim' "$TMP/h" && eg_fail "target '$t' reached the server"
done
# An absolute form naming another host still goes to the configured server,
# under its prefix (never an open proxy).
code=$({
  printf 'POST http://evil.example/Microsoft-Server-ActiveSync?%s HTTP/1.1\r\nHost: evil.example\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' "$Q" "$(stat -c %s "$TMP/fs.wbxml")"
  cat "$TMP/fs.wbxml"
} |
  timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PX; cat >&3; cat <&3" | tee "$TMP/abs" | head -1 | awk '{print $2}')
if [ "$code" = 200 ]; then
  grep -qi "^X-Exsim-Host: 127.0.0.1:$exsim_port" "$TMP/abs" || eg_fail "absolute form: exsim saw $(grep -i '^X-Exsim-Host' "$TMP/abs")"
else
  [ "$code" = 400 ] || eg_fail "absolute form naming another host: HTTP $code"
fi
grep -q '"status":200' "$TMP/access.log" || eg_fail "nothing logged"
eg_pass "hostile targets never reach another path on the server"
