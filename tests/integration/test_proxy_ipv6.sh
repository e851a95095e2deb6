#!/usr/bin/env bash
# IPv6 end to end: the proxy listens on [::1], the upstream url is an IPv6
# literal (https://[::1]:PORT, certificate checked against its IP address),
# the Host header carries the brackets, and the access log and
# X-Forwarded-For carry the client's IPv6 address.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77
python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null || exit 77

CERTS=$(eg_certs)
eg_exsim --tls --host ::1
PX=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: v6
      listen: "[::1]:$PX"
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: "https://[::1]:$exsim_port", ca: $CERTS/ca.crt }
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/fs.wbxml" # FolderSync, SyncKey 0

out=$(curl -s --max-time 10 --cacert "$CERTS/ca.crt" -D "$TMP/h" -o /dev/null -w '%{http_code}' \
  -X POST "https://[::1]:$PX/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=a&DeviceId=V6DEV&DeviceType=T" \
  -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 200 ] || eg_fail "IPv6: HTTP $out"
grep -qi "^X-Exsim-Host: \[::1\]:$exsim_port" "$TMP/h" || eg_fail "Host header: $(grep -i exsim-host "$TMP/h")"
for _ in $(seq 20); do [ -s "$TMP/access.log" ] && break; sleep 0.1; done
grep -q '"client":"::1"' "$TMP/access.log" || eg_fail "access log client: $(cat "$TMP/access.log")"
kill -TERM "$proxy_pid"
wait "$proxy_pid" || eg_fail "proxy exit status $?"
eg_pass "IPv6 listener and IPv6 literal upstream"
