#!/usr/bin/env bash
# Streaming: a 200 MB upload (Content-Length and chunked) and a 200 MB
# download pass through the proxy, TLS on both legs, while the proxy's peak
# RSS (VmHWM) grows by less than 4 MB: bodies are streamed with
# back-pressure, never buffered.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
command -v openssl >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim --tls
DL=$(eg_port); PX=$(eg_port); PX2=$(eg_port); ADM=$(eg_port)
SIZE=$((200 * 1024 * 1024))

# The download upstream: openssl's file server (HTTP/1.0, body delimited by
# the end of the connection: the proxy re-frames it as chunked).
mkdir -p "$TMP/www/autodiscover"
head -c "$SIZE" /dev/urandom > "$TMP/www/autodiscover/autodiscover.xml"
truncate -s "$SIZE" "$TMP/up.bin"

cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  timeouts: { header: 5s, body: 10s }
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
    - name: dl
      listen: 127.0.0.1:$PX2
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$DL, ca: $CERTS/ca.crt }
log: { access: "$TMP/access.log", level: info }
YAML

(cd "$TMP/www" && exec openssl s_server -quiet -accept "$DL" -cert "$CERTS/exsim.crt" -key "$CERTS/exsim.key" -WWW) >"$TMP/s_server.log" 2>&1 &
EG_PIDS+=("$!")
eg_wait_port "$DL"
eg_stack proxy "$TMP/easgate.yaml"

hwm() { awk '/VmHWM/ {print $2}' "/proc/$proxy_pid/status"; }
EAS="/Microsoft-Server-ActiveSync"
Q="Cmd=SendMail&User=alice&DeviceId=ABC123&DeviceType=iPhone"
C=(curl -s --max-time 120 --cacert "$CERTS/ca.crt")

# warm up every path once (TLS contexts, pools, first allocations)
"${C[@]}" -o /dev/null -X POST "https://localhost:$PX$EAS?$Q" -H 'MS-ASProtocolVersion: 14.1' --data-binary 'warm'
"${C[@]}" -o /dev/null -X POST "https://localhost:$PX$EAS?$Q" -H 'MS-ASProtocolVersion: 14.1' \
  -H 'Transfer-Encoding: chunked' --data-binary 'warm'
"${C[@]}" -o /dev/null -r 0-1000 "https://localhost:$PX2/autodiscover/autodiscover.xml" || true
before=$(hwm)

# upload, Content-Length
out=$("${C[@]}" -D "$TMP/h1" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
  -H 'MS-ASProtocolVersion: 14.1' -H 'Content-Type: message/rfc822' --data-binary @"$TMP/up.bin")
[ "$out" = 200 ] || eg_fail "upload: HTTP $out"
got=$(awk 'tolower($1)=="x-exsim-bytes:" {print $2}' "$TMP/h1" | tr -d '\r')
[ "$got" = "$SIZE" ] || eg_fail "upload: exsim saw $got bytes, sent $SIZE"
eg_pass "200 MB upload (Content-Length) streamed"

# upload, chunked
out=$("${C[@]}" -D "$TMP/h2" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
  -H 'MS-ASProtocolVersion: 14.1' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/up.bin")
[ "$out" = 200 ] || eg_fail "chunked upload: HTTP $out"
got=$(awk 'tolower($1)=="x-exsim-bytes:" {print $2}' "$TMP/h2" | tr -d '\r')
[ "$got" = "$SIZE" ] || eg_fail "chunked upload: exsim saw $got bytes, sent $SIZE"
eg_pass "200 MB upload (chunked) streamed"

# download, re-framed as chunked, content intact
"${C[@]}" -o "$TMP/down.bin" "https://localhost:$PX2/autodiscover/autodiscover.xml" || eg_fail "download failed"
[ "$(stat -c %s "$TMP/down.bin")" = "$SIZE" ] || eg_fail "download: got $(stat -c %s "$TMP/down.bin") bytes"
cmp -s "$TMP/down.bin" "$TMP/www/autodiscover/autodiscover.xml" || eg_fail "download: content differs"
rm -f "$TMP/down.bin"
eg_pass "200 MB download streamed, content intact"

after=$(hwm)
growth=$((after - before))
echo "proxy peak RSS: $before kB before, $after kB after (+$growth kB)"
if ldd "$BUILD/easgate" | eg_has libasan; then
  # ASan holds freed memory in quarantine: RSS says nothing about the proxy
  eg_pass "peak RSS growth $growth kB (not checked under AddressSanitizer)"
else
  [ "$growth" -lt 4096 ] || eg_fail "peak RSS grew by $growth kB (limit 4096)"
  eg_pass "peak RSS growth $growth kB < 4 MB"
fi
