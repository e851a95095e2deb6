#!/usr/bin/env bash
# A chunked response with a trailer from the upstream. fuzz_proxy found that
# the proxy handed the trailer's fields to a response head it had already
# released (a NULL dereference in head_field: one answer from the server
# killed the process). Trailers are dropped, as on the client side: the
# proxy frames the client's answer itself. Three requests on one keep-alive
# connection get the body without the trailer, an endless trailer ends only
# its own connection, and the proxy keeps serving.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

UP=$(eg_port); PL=$(eg_port); ADM=$(eg_port)
cat >"$TMP/up.py" <<'PY'
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
def serve(c):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                return
            endless = b"endless" in line
            while f.readline() not in (b"\r\n", b""):
                pass
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
            if endless:
                for _ in range(20000):
                    c.sendall(b"X-Trailer-Field: " + b"x" * 100 + b"\r\n")
            c.sendall(b"X-Secret: 1\r\nAuthorization: Basic Ym9iOng=\r\n\r\n")
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
eg_start upstream python3 "$TMP/up.py" "$UP"
eg_wait_port "$UP"
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  instances:
    - name: plain
      listen: 127.0.0.1:$PL
      upstream: { url: http://127.0.0.1:$UP }
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"

python3 - "$PL" <<'PY' || eg_fail "response trailers"
import socket, sys
port = int(sys.argv[1])
def get(s, path):
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"0\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return data
        data += d
    return data
s = socket.create_connection(("127.0.0.1", port), timeout=10)
for i in range(3):
    d = get(s, "/autodiscover/autodiscover.xml")
    assert d.startswith(b"HTTP/1.1 200"), d[:60]
    assert b"hello" in d, d
    assert b"X-Secret" not in d and b"Authorization" not in d, ("a trailer reached the client", d)
s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
get(s, "/autodiscover/autodiscover.xml?endless")  # cut off or dropped, never a crash
s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
d = get(s, "/autodiscover/autodiscover.xml")
assert d.startswith(b"HTTP/1.1 200") and b"hello" in d, d[:80]
print("trailers dropped on three keep-alive answers; an endless one ended its connection only")
PY
kill -0 "$proxy_pid" || eg_fail "the proxy died"
eg_stop_clean proxy
eg_pass "response trailers are dropped, never a crash"
