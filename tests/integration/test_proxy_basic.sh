#!/usr/bin/env bash
# The proxy's everyday behaviour over real TLS, against exsim:
# allowed request passes (Host rewritten), blocked user agent gets WBXML 129
# (14.1) or 403 (12.1), malformed identity gets 108 / 400, /EWS 403, other
# paths 404, autodiscover passes, a held Ping lasts its heartbeat, header
# timeout 408 (apart from the TLS handshake timeout), oversize header 431,
# pipelined requests answered in order,
# upstream down -> 503 + Retry-After, client certificate required.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
command -v python3 >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim --tls --ping-cap 30
PX=$(eg_port); MT=$(eg_port); DN=$(eg_port); ADM=$(eg_port); DEAD=$(eg_port)

cat > "$TMP/policy.yaml" <<YAML
unknown_devices: allow
user_agents:
  allow: ["Apple-iPhone*", "Android-Mail*"]
  block: ["BadApp*"]
devices: { allow: [], block: ["BADDEVICE0001"] }
ews: { allow_subscriptions: false }
YAML
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$ADM
  timeouts: { handshake: 2s, header: 1s, body: 5s, keepalive: 5s, long_poll_margin: 2s, drain_grace: 3s, upstream_connect: 1s }
  limits: { max_header_size: 4k, max_body_read: 64k, max_heartbeat: 10s }
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
    - name: mtls
      listen: 127.0.0.1:$MT
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $CERTS/device-ca.crt, required: true }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
    - name: down
      listen: 127.0.0.1:$DN
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: "https://127.0.0.1:$DEAD", ca: $CERTS/ca.crt, retry_after: 7s }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML

eg_stack proxy "$TMP/easgate.yaml"

EAS="/Microsoft-Server-ActiveSync"
Q="Cmd=FolderSync&User=alice&DeviceId=ABC123&DeviceType=iPhone"
C=(curl -s --max-time 20 --cacert "$CERTS/ca.crt")
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' > "$TMP/fs.wbxml"

# 1. allowed: reaches exsim, Host rewritten to the upstream's
out=$("${C[@]}" -D "$TMP/h1" -o "$TMP/b1" -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 14.1' \
  -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 200 ] || eg_fail "allowed FolderSync: HTTP $out"
grep -qi "^X-Exsim-Cmd: FolderSync" "$TMP/h1" || eg_fail "allowed FolderSync did not reach exsim"
grep -qi "^X-Exsim-Host: localhost:$exsim_port" "$TMP/h1" || eg_fail "Host not rewritten: $(grep -i exsim-host "$TMP/h1")"
eg_pass "allowed request passes, Host rewritten"

# 2. blocked user agent: 14.1 -> 200 + WBXML FolderSync Status 129; 12.1 -> 403
out=$("${C[@]}" -D "$TMP/h2" -o "$TMP/b2" -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
  -H 'User-Agent: BadApp/2' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 200 ] || eg_fail "blocked 14.1: HTTP $out"
grep -qi "^Content-Type: application/vnd.ms-sync.wbxml" "$TMP/h2" || eg_fail "blocked 14.1: not WBXML"
# FolderSync (page 7, tag 0x16) > Status (0x0C) = "129"
[ "$(xxd -p "$TMP/b2" | tr -d '\n')" = "03016a000007564c033132390001""01" ] || eg_fail "blocked 14.1 body: $(xxd -p "$TMP/b2")"
grep -qi "^X-Exsim" "$TMP/h2" && eg_fail "blocked request reached exsim"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
  -H 'User-Agent: BadApp/2' -H 'MS-ASProtocolVersion: 12.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 403 ] || eg_fail "blocked 12.1: HTTP $out"
eg_pass "blocked user agent: WBXML 129 for 14.1, 403 for 12.1"

# 3. malformed identity: no DeviceId -> Status 108 (14.1) / 400 (12.1)
BADQ="Cmd=FolderSync&User=alice&DeviceType=iPhone"
out=$("${C[@]}" -o "$TMP/b3" -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$BADQ" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 200 ] && xxd -p "$TMP/b3" | eg_has "03313038" || eg_fail "malformed 14.1: HTTP $out $(xxd -p "$TMP/b3")"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Sync&DeviceId=x!y" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 12.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 400 ] || eg_fail "malformed 12.1: HTTP $out"
eg_pass "malformed identity: 108 / 400"

# 4. routes: /EWS 403, other 404, autodiscover passes (any case), GET on EAS 405
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX/EWS/Exchange.asmx" \
  --data-binary '<s:Envelope><s:Body><m:Subscribe/></s:Body></s:Envelope>')
[ "$out" = 403 ] || eg_fail "/EWS: HTTP $out"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' "https://localhost:$PX/owa/")
[ "$out" = 404 ] || eg_fail "/owa: HTTP $out"
out=$("${C[@]}" -D "$TMP/h4" -o /dev/null -w '%{http_code}' "https://localhost:$PX/AutoDiscover/AutoDiscover.xml")
[ "$out" = 200 ] && grep -qi "^X-Exsim" "$TMP/h4" || eg_fail "autodiscover: HTTP $out"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' "https://localhost:$PX$EAS")
[ "$out" = 405 ] || eg_fail "GET $EAS: HTTP $out"
eg_pass "routes: EWS 403, other 404, autodiscover passes, GET 405"

# 5. a Ping is held for its heartbeat (2 s) and then answered by exsim
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x32\x00\x01\x01' > "$TMP/ping.wbxml"
t0=$(date +%s%N)
out=$("${C[@]}" -D "$TMP/h5" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?Cmd=Ping&User=alice&DeviceId=ABC123&DeviceType=iPhone" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/ping.wbxml")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$out" = 200 ] && grep -qi "^X-Exsim-Held-Ms" "$TMP/h5" || eg_fail "Ping: HTTP $out"
[ "$ms" -ge 1800 ] && [ "$ms" -lt 6000 ] || eg_fail "Ping held $ms ms, expected about 2000"
eg_pass "Ping held for its heartbeat ($ms ms)"

# 6. raw HTTP: header timeout 408, oversize header 431, pipelining in order
python3 - "$PX" "$CERTS/ca.crt" <<'PY' || eg_fail "raw HTTP checks failed"
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")
def read_all(s, limit=5.0):
    s.settimeout(limit); data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            data += d
    except (socket.timeout, ssl.SSLError, ConnectionResetError):
        pass
    return data
# header timeout: half a head, then silence
s = conn(); s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
t = time.time(); d = read_all(s); el = time.time() - t
assert d.startswith(b"HTTP/1.1 408"), d[:60]
assert el < 4, el
print("408 after %.2fs" % el)
# handshake timeout (2s) apart from the header timeout (1s): silence
# before the ClientHello is cut after about 2 s, not 1 ...
s = socket.create_connection(("127.0.0.1", port), timeout=10)
t = time.time(); d = read_all(s); el = time.time() - t
assert d == b"" and 1.7 <= el < 5, (d[:60], el)
print("silent connection closed after %.2fs (handshake timeout)" % el)
# ... and a handshake that takes 1.5 s still gets its full second for the head
s = socket.create_connection(("127.0.0.1", port), timeout=10)
time.sleep(1.5)
s = ctx.wrap_socket(s, server_hostname="localhost")
s.sendall(b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
d = read_all(s); assert d.startswith(b"HTTP/1.1 404"), d[:60]
print("slow handshake, then a request: answered")
# oversize header (limit 4k)
s = conn(); s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n")
d = read_all(s); assert d.startswith(b"HTTP/1.1 431"), d[:60]
# pipelining: three requests in one write, answers in order
s = conn()
reqs = (b"GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
s.sendall(reqs)
d = read_all(s)
import re
codes = re.findall(rb"HTTP/1\.1 (\d{3}) ", d)
assert codes == [b"200", b"404", b"200"], codes
print("pipelined answers in order:", codes)
PY
eg_pass "handshake timeout, header timeout 408, oversize header 431, pipelining"

# 7. upstream down: 503 with Retry-After, quickly
t0=$(date +%s%N)
out=$("${C[@]}" -D "$TMP/h7" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$DN$EAS?$Q" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$out" = 503 ] || eg_fail "upstream down: HTTP $out"
grep -qi "^Retry-After: 7" "$TMP/h7" || eg_fail "upstream down: no Retry-After: $(cat "$TMP/h7")"
[ "$ms" -lt 3000 ] || eg_fail "upstream down took $ms ms"
out=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$DN$EAS?$Q" \
  -H 'User-Agent: Apple-iPhone/1' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml")
[ "$out" = 503 ] || eg_fail "upstream marked down: HTTP $out"
eg_pass "upstream down: 503 + Retry-After ($ms ms)"

# 8. client certificate required
out=$("${C[@]}" -S -o /dev/null -w '%{http_code}' "https://localhost:$MT/autodiscover/autodiscover.xml" \
  2>"$TMP/mtls.err" || true)
[ "$out" = 000 ] || eg_fail "mTLS without certificate: HTTP $out"
# the phone is told why (TLS alert), not just cut off
grep -qi "alert" "$TMP/mtls.err" || eg_fail "no TLS alert for a missing client certificate: $(cat "$TMP/mtls.err")"
out=$("${C[@]}" --cert "$CERTS/device1.crt" --key "$CERTS/device1.key" -o /dev/null -w '%{http_code}' \
  "https://localhost:$MT/autodiscover/autodiscover.xml")
[ "$out" = 200 ] || eg_fail "mTLS with certificate: HTTP $out"
for _ in $(seq 20); do grep -q '"instance":"mtls"' "$TMP/access.log" && break; sleep 0.1; done
grep -q '"client_cert":"CN=alice urn:easgate:device:DEVICE0001"' "$TMP/access.log" \
  || eg_fail "the client certificate is not in the access log"
eg_pass "client certificate required, and logged"

# 9. access log and metrics
grep -q '"decision":"block","reason":"ua-blocked"' "$TMP/access.log" || eg_fail "access log lacks the block line"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/access.log" || eg_fail "access log is not JSON lines"
m=$(curl -s "http://127.0.0.1:$ADM/metrics")
grep -q 'easgate_requests_total{instance_name="main",command="FolderSync",decision="block"}' <<<"$m" || eg_fail "metrics: no block counter"
grep -q '^easgate_tls_handshakes_total [1-9]' <<<"$m" || eg_fail "metrics: no TLS handshakes"
[ "$(curl -s "http://127.0.0.1:$ADM/readyz")" = ready ] || eg_fail "/readyz"
eg_pass "access log JSON, metrics, readyz"

eg_stop_clean proxy
eg_pass "clean exit"
