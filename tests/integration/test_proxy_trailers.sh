#!/usr/bin/env bash
# Chunked trailers are never headers. A chunked body may end with trailer
# fields ("0\r\nX-T: 1\r\n\r\n"); the proxy decides on the head alone, so a
# trailer must neither crash it (it once dereferenced the released head) nor
# reach Exchange as a header (a trailer Authorization would have passed the
# user binding). Trailers are dropped, streamed or buffered, whole or cut
# into single bytes; an endless trailer is cut off; the proxy keeps serving.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

CERTS=$(eg_certs)
UP=$(eg_port); PX=$(eg_port); PL=$(eg_port); ADM=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  timeouts: { header: 3s, body: 3s }
  limits: { max_header_size: 8KiB }
  instances:
    - name: tls
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: http://127.0.0.1:$UP }
    - name: plain
      listen: 127.0.0.1:$PL
      upstream: { url: http://127.0.0.1:$UP }
log: { access: "$TMP/access.log", level: info }
YAML
eg_start upstream python3 "$SRC/tests/integration/capture_upstream.py" "$UP" "$TMP/capture.jsonl"
eg_wait_port "$UP"
eg_stack proxy "$TMP/easgate.yaml"

python3 - "$PL" "$PX" "$CERTS/ca.crt" "$TMP/capture.jsonl" <<'PY' || eg_fail "trailers"
import base64, json, socket, ssl, sys, time
plain, tlsport, ca, cap = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
EAS = "/Microsoft-Server-ActiveSync?Cmd=%s&User=alice&DeviceId=TRAIL1&DeviceType=iPhone"
BOB = base64.b64encode(b"bob:secret").decode()

def connect(use_tls):
    s = socket.create_connection(("127.0.0.1", tlsport if use_tls else plain), timeout=5)
    if use_tls:
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s

def answer(s):
    """One HTTP answer (head + Content-Length body), or b'' if closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return data
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return head + b"\r\n\r\n" + rest

def request(method, target, trailer, byte_by_byte=False, use_tls=False):
    req = ("%s %s HTTP/1.1\r\nHost: localhost\r\nMS-ASProtocolVersion: 14.1\r\n"
           "Authorization: Basic %s\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % (method, target,
           base64.b64encode(b"alice:pw").decode())).encode()
    req += b"4\r\n\x03\x01\x6a\x00\r\n0\r\n" + trailer + b"\r\n"
    s = connect(use_tls)
    if byte_by_byte:
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
    else:
        s.sendall(req)
    a = answer(s)
    s.close()
    return a

def captured():
    try:
        return [json.loads(l) for l in open(cap)]
    except FileNotFoundError:
        return []

cases = [
    ("POST", "/autodiscover/autodiscover.xml", "autodiscover (streamed)"),
    ("POST", EAS % "Sync", "Sync (streamed)"),
    ("POST", EAS % "SendMail", "SendMail (streamed)"),
    ("POST", EAS % "FolderSync", "FolderSync (buffered)"),
    ("POST", EAS % "Provision", "Provision (buffered)"),
    ("POST", EAS % "Ping", "Ping (buffered)"),
]
trailers = [b"X-T: 1\r\n", b"Authorization: Basic " + BOB.encode() + b"\r\nX-Evil: 1\r\n"]
for use_tls in (False, True):
    for bbb in (False, True):
        for method, target, name in cases:
            for t in trailers:
                before = len(captured())
                a = request(method, target, t, bbb, use_tls)
                assert a.startswith(b"HTTP/1.1 "), (name, use_tls, bbb, a[:100])
                time.sleep(0.02)
                for rec in captured()[before:]:
                    names = [h[0].lower() for h in rec["headers"]]
                    assert "x-t" not in names and "x-evil" not in names, (name, rec)
                    assert names.count("authorization") == 1, (name, rec)
                    auth = [h[1] for h in rec["headers"] if h[0].lower() == "authorization"]
                    assert BOB not in auth[0], ("trailer Authorization forwarded", name, rec)
                    assert rec["trailer"] == [], ("trailer forwarded", name, rec)
        print("tls=%s byte-by-byte=%s: %d cases answered, no trailer forwarded"
              % (use_tls, bbb, len(cases) * len(trailers)))

# an endless trailer is cut off, not read forever
s = connect(False)
s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
           "1\r\nx\r\n0\r\n" % (EAS % "Sync")).encode())
closed = False
try:
    for i in range(4000):
        s.sendall(b"X-Pad-%d: %s\r\n" % (i, b"y" * 64))
except OSError:
    closed = True
if not closed:
    s.settimeout(5)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
s.close()
print("endless trailer: connection ended")

# still serving
s = connect(True)
s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n" % (EAS % "Sync")).encode())
a = answer(s)
assert a.startswith(b"HTTP/1.1 200"), a[:100]
print("proxy still serving")
PY
kill -0 "$proxy_pid" 2>/dev/null || eg_fail "the proxy died"
grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/proxy.log" && eg_fail "sanitizer report"
eg_stop_clean proxy
eg_pass "trailers never crash the proxy and never become headers"
