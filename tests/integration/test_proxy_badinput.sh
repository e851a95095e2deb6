#!/usr/bin/env bash
# Bad input never crashes the proxy or leaves a client hanging: malformed
# request lines and headers, smuggling attempts (Content-Length with
# chunked, two lengths), broken chunk framing, NUL bytes, an HTTP/2 preface,
# random bytes in place of a TLS handshake, a client gone mid-body; bodiless
# requests and empty Pings followed by bytes that are not their body. Each
# gets a 4xx answer or a closed connection, and the proxy keeps serving.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim --tls
PX=$(eg_port); PL=$(eg_port); ADM=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$ADM
  timeouts: { header: 2s, body: 2s }
  instances:
    - name: tls
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
    - name: plain
      listen: 127.0.0.1:$PL
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"

python3 - "$PL" "$PX" "$CERTS/ca.crt" <<'PY' || eg_fail "bad input handling"
import os, random, socket, ssl, sys, time
plain, tlsport, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
EAS = b"/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=D1&DeviceType=T"

def exchange(payload, port=plain, wait=4.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    try:
        s.sendall(payload)
    except OSError:
        pass
    data = b""
    t = time.time()
    try:
        while time.time() - t < wait:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return data

cases = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "no version": b"GET /\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
    "NUL in header": b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    "CL and TE": b"POST " + EAS + b" HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two lengths": b"POST " + EAS + b" HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "negative length": b"POST " + EAS + b" HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    "bad chunk size": b"POST " + EAS + b" HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "huge chunk size": b"POST " + EAS + b" HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    "http2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "CONNECT": b"CONNECT mail.example.com:443 HTTP/1.1\r\nHost: mail.example.com:443\r\n\r\n",
    "absolute URL elsewhere": b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "bad base64 query": b"POST /Microsoft-Server-ActiveSync?%%%%=== HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "random bytes": bytes(random.Random(7).getrandbits(8) for _ in range(3000)),
}
for name, payload in cases.items():
    d = exchange(payload)
    status = d[9:12] if d.startswith(b"HTTP/1.1 ") else b"(closed)"
    assert not d.startswith(b"HTTP/1.1 2"), (name, d[:80])
    print("%-24s -> %s" % (name, status.decode()))

# Bodiless requests and empty Pings (issue 14): each is complete with its
# head, so what follows it is the next request, never a body; every answer
# is counted, none is lost, no 100 Continue for a body that is not coming.
PING = (b"POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=a&DeviceId=D1&DeviceType=T HTTP/1.1\r\n"
        b"Host: a\r\nMS-ASProtocolVersion: 14.1\r\nX-Exsim-Hold-Ms: 0\r\n")
def statuses(d):
    """The statuses of the answers in d, read one after the other by their
    framing (Content-Length or chunked)."""
    out = []
    while d.startswith(b"HTTP/1.1 "):
        head, sep, d = d.partition(b"\r\n\r\n")
        if not sep:
            break
        out.append(head[9:12])
        lines = [l.lower() for l in head.split(b"\r\n")[1:]]
        n = [int(l.split(b":")[1]) for l in lines if l.startswith(b"content-length:")]
        if b"transfer-encoding: chunked" in lines:
            while True:
                size, _, d = d.partition(b"\r\n")
                k = int(size.split(b";")[0] or b"0", 16)
                d = d[k + 2:]
                if k == 0:
                    break
        else:
            d = d[n[0] if n else 0:]
    return out
bodiless = {
    # name: (payload, the statuses wanted in order)
    "empty Ping, then garbage": (PING + b"Content-Length: 0\r\n\r\nGARBAGE\r\n\r\n", [b"200", b"400"]),
    "empty Ping, bytes beyond its length": (PING + b"Content-Length: 0\r\n\r\n\x03\x01\x6a\x00", [b"200", b"400"]),
    "POST without length, then a body": (PING + b"\r\n<Ping/>", [b"200", b"400"]),
    "empty Ping with Expect": (PING + b"Content-Length: 0\r\nExpect: 100-continue\r\n\r\n", [b"200"]),
    "empty chunked Ping with junk after": (PING + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", [b"200", b"400"]),
    "empty Ping, zero-padded length": (PING + b"Content-Length: 000\r\n\r\n", [b"200"]),
    "empty Ping, length and chunked": (PING + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [b"400"]),
    "100 empty Pings in one write": ((PING + b"Content-Length: 0\r\n\r\n") * 100, [b"200"] * 100),
    "empty Ping over HTTP/1.0": (PING.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n", [b"200"]),
}
for name, (payload, want) in bodiless.items():
    d = exchange(payload, wait=3.0)
    got = statuses(d)
    assert got == want, (name, got, d[:200])
    assert b"100 Continue" not in d, (name, "100 Continue for no body")
    print("%-36s -> %s" % (name, b",".join(sorted(set(got))).decode()))

# random bytes instead of a TLS ClientHello, and a handshake cut in half
for n in (1, 5, 300, 5000):
    exchange(os.urandom(n), port=tlsport, wait=1.0)
ctx = ssl.create_default_context(cafile=ca)
s = socket.create_connection(("127.0.0.1", tlsport), timeout=5)
s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
s.close()

# a client that goes away in the middle of a body the proxy is streaming
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tlsport), timeout=5), server_hostname="localhost")
s.sendall(b"POST /Microsoft-Server-ActiveSync?Cmd=SendMail&User=a&DeviceId=D1&DeviceType=T HTTP/1.1\r\n"
          b"Host: a\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100000)
s.close()
# and one that sends a request and leaves before the answer
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tlsport), timeout=5), server_hostname="localhost")
s.sendall(b"GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: a\r\n\r\n")
s.close()
time.sleep(0.5)
PY

# still serving, every worker
for i in 1 2 3 4; do
  out=$(curl -s --max-time 10 --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$PX/autodiscover/autodiscover.xml")
  [ "$out" = 200 ] || eg_fail "after bad input: HTTP $out"
done
kill -0 "$proxy_pid" || eg_fail "proxy died"
grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/proxy.log" && eg_fail "sanitizer report"
kill -TERM "$proxy_pid"
wait "$proxy_pid" || eg_fail "proxy exit status $?"
eg_pass "bad input: answered 4xx or closed, proxy unharmed"
