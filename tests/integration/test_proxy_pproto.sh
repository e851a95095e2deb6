#!/usr/bin/env bash
# Behind a TCP load balancer (TLS passes through to the proxy) that speaks
# the PROXY protocol: an instance with proxy_protocol: true reads the v1 or
# v2 header before TLS, logs and limits the client it names, accepts a
# balancer's LOCAL health check, reads a header that comes in pieces, and
# closes a connection that does not start with a header, saying why.
# Clients: curl --haproxy-protocol (v1), and a small Python client for
# chosen source addresses, v2 and split headers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in curl python3; do command -v $t >/dev/null || { echo "no $t"; exit 77; }; done
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim
PX=$(eg_port); ADM=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  limits: { max_connections_per_client: 1 }
  instances:
    - name: lb
      listen: 127.0.0.1:$PX
      proxy_protocol: true
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: http://127.0.0.1:$exsim_port }
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"

cat > "$TMP/ppc.py" <<'PY'
# ppc.py PORT CAFILE MODE SRC [HOLD]: one FolderSync through a PROXY header.
# MODE: v1, v2 (SRC IPv4 or IPv6), local (v2 LOCAL), split (v2 in pieces).
# Prints the HTTP status (or "closed"); with HOLD, keeps the connection open
# HOLD seconds after the answer.
import socket, ssl, struct, sys, time, ipaddress
port, cafile, mode, src = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
hold = float(sys.argv[5]) if len(sys.argv) > 5 else 0
sig = b"\r\n\r\n\x00\r\nQUIT\n"
ip = ipaddress.ip_address(src)
if mode == "v1":
    hdr = ("PROXY TCP%d %s 127.0.0.1 40000 %d\r\n" % (ip.version, src, port)).encode()
elif mode == "local":
    hdr = sig + b"\x20\x00\x00\x00"
else:
    dst = ipaddress.ip_address("127.0.0.1" if ip.version == 4 else "::1")
    body = ip.packed + dst.packed + struct.pack("!HH", 40000, port) + b"\x03\x00\x04\x00\x00\x00\x00"
    hdr = sig + bytes([0x21, 0x11 if ip.version == 4 else 0x21]) + struct.pack("!H", len(body)) + body
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if mode == "split":
    for i in range(0, len(hdr), 7):
        s.sendall(hdr[i:i + 7])
        time.sleep(0.05)
else:
    s.sendall(hdr)
ctx = ssl.create_default_context(cafile=cafile)
try:
    t = ctx.wrap_socket(s, server_hostname="localhost")
    body = b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01"
    t.sendall(b"POST /Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=PP1&DeviceType=iPhone HTTP/1.1\r\n"
              b"Host: localhost\r\nMS-ASProtocolVersion: 14.1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
except (ssl.SSLError, OSError):
    print("closed")
    sys.exit(0)
print(data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed")
sys.stdout.flush()
if hold:
    time.sleep(hold)
PY
ppc() { python3 "$TMP/ppc.py" "$PX" "$CERTS/ca.crt" "$@"; }
logged() { # logged CLIENT: the access log has a FolderSync from CLIENT
  for _ in $(seq 30); do grep -q "\"client\":\"$1\".*\"command\":\"FolderSync\"" "$TMP/access.log" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

[ "$(ppc v1 203.0.113.7)" = 200 ] || eg_fail "v1 header: the request did not pass"
logged 203.0.113.7 || eg_fail "v1 header: the access log does not name the client the balancer gave"
[ "$(ppc v2 2001:db8::7)" = 200 ] || eg_fail "v2 header (IPv6, with a TLV): the request did not pass"
logged 2001:db8::7 || eg_fail "v2 header: the access log does not name the IPv6 client"
[ "$(ppc split 198.51.100.9)" = 200 ] || eg_fail "v2 header in 7-byte pieces: the request did not pass"
logged 198.51.100.9 || eg_fail "split header: the client is not logged"
[ "$(ppc local 192.0.2.99)" = 200 ] || eg_fail "v2 LOCAL (health check): the request did not pass"
logged 127.0.0.1 || eg_fail "v2 LOCAL: the connection's own address should be logged"
code=$(curl -s --max-time 10 --haproxy-protocol --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_code}' \
  -X POST -H 'MS-ASProtocolVersion: 14.1' --data-binary @/dev/null \
  "https://localhost:$PX/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=PP2&DeviceType=iPhone" || true)
[ "$code" = 200 ] || eg_fail "curl --haproxy-protocol: HTTP $code"
eg_pass "v1, v2 (IPv4, IPv6, TLVs, in pieces) and LOCAL headers: the balancer's client is logged"

# the per-client limit (1 here) counts the client in the header, not the balancer
ppc v1 203.0.113.50 3 > "$TMP/held.out" &
held=$!
for _ in $(seq 30); do [ -s "$TMP/held.out" ] && break; sleep 0.1; done
[ "$(cat "$TMP/held.out")" = 200 ] || eg_fail "the first connection from 203.0.113.50 did not pass"
[ "$(ppc v1 203.0.113.50)" = 503 ] || eg_fail "a second connection from the same client was not refused"
[ "$(ppc v1 203.0.113.51)" = 200 ] || eg_fail "another client behind the same balancer was refused"
wait "$held"
eg_pass "max_connections_per_client counts the client named in the header"

# no header: closed before TLS, with the reason in the log
code=$(curl -s --max-time 10 --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_code}' \
  "https://localhost:$PX/Microsoft-Server-ActiveSync" || true)
[ "$code" = 000 ] || eg_fail "a connection without a PROXY header got HTTP $code"
for _ in $(seq 30); do grep -q "bad PROXY protocol header: not a PROXY protocol header" "$TMP/proxy.log" && break; sleep 0.1; done
grep -q "instance lb: connection from 127.0.0.1 closed: bad PROXY protocol header: not a PROXY protocol header" \
  "$TMP/proxy.log" || eg_fail "no log line for a connection without a PROXY header"
printf 'PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n' | python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.stdin.buffer.read())
print("closed" if s.recv(100) == b"" else "open")' "$PX" > "$TMP/badport.out"
[ "$(cat "$TMP/badport.out")" = closed ] || eg_fail "a header with a bad port did not close the connection"
grep -q "bad PROXY protocol header: v1 header: port not a number" "$TMP/proxy.log" || eg_fail "bad port: no reason logged"
kill -0 "$proxy_pid" || eg_fail "the proxy died"
eg_pass "a missing or broken header closes the connection with the reason logged"

eg_stop_clean proxy
eg_pass "clean exit"
