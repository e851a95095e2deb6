#!/usr/bin/env bash
# Connection-oriented authentication through the proxy. IIS authenticates
# NTLM and Negotiate per TCP connection, and exsim --auth ntlm does the same:
# the handshake (NEGOTIATE, 401 CHALLENGE, AUTHENTICATE) must run on one
# upstream connection, that connection must stay the client connection's
# own (never pooled, never lent to another client), later requests on it
# without Authorization are served and bound to the NTLM user (never to the
# query's User=), and a client without credentials never rides a connection
# somebody else authenticated. A real client (curl --ntlm) and a raw client
# (NTLM, raw and SPNEGO-wrapped Negotiate) are used.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77
command -v curl >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

UP=$(eg_port); PL=$(eg_port); ADM=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  instances:
    - name: plain
      listen: 127.0.0.1:$PL
      upstream: { url: http://127.0.0.1:$UP, pool_size: 8 }
log: { access: "$TMP/access.log", level: info }
YAML
eg_start exsim "$BUILD/exsim" --listen "127.0.0.1:$UP" --auth ntlm --users 'alice:Secret1,bob:Pw-2'
eg_wait_port "$UP"
eg_start proxy "$BUILD/easgate" proxy -c "$TMP/easgate.yaml"
eg_wait_port "$PL"

EAS="http://127.0.0.1:$PL/Microsoft-Server-ActiveSync"
Q="Cmd=Sync&User=alice&DeviceId=NTLM1&DeviceType=iPhone"

# 1. a real client: curl's NTLM handshake through the proxy
out=$(curl -s --max-time 10 --ntlm -u alice:Secret1 -X POST "$EAS?$Q" -H 'MS-ASProtocolVersion: 14.1' \
  -D "$TMP/h1" -o /dev/null -w '%{http_code}') || true
[ "$out" = 200 ] || eg_fail "curl --ntlm through the proxy: $out, want 200"
grep -qi '^X-Exsim-Auth-User: alice' "$TMP/h1" || eg_fail "curl --ntlm: not authenticated as alice"
out=$(curl -s --max-time 10 --ntlm -u alice:wrong -X POST "$EAS?$Q" -o /dev/null -w '%{http_code}') || true
[ "$out" = 401 ] || eg_fail "curl --ntlm with a wrong password: $out, want 401"
echo "curl --ntlm: 200 with the password, 401 without"

# 2-4. raw clients
python3 - "$PL" "$SRC/tests/integration" "$TMP/access.log" <<'PY' || eg_fail "raw NTLM clients"
import json, socket, sys, time
sys.path.insert(0, sys.argv[2])
import ntlm_client as N
port, log = int(sys.argv[1]), sys.argv[3]

def req(s, q, auth=None, extra=""):
    h = ("POST /Microsoft-Server-ActiveSync?%s HTTP/1.1\r\nHost: x\r\n"
         "MS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n%s" % (q, extra))
    if auth:
        h += "Authorization: %s\r\n" % auth
    s.sendall((h + "\r\n").encode())
    d = b""
    while b"\r\n\r\n" not in d:
        x = s.recv(65536)
        assert x, "connection closed"
        d += x
    head, _, rest = d.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdr = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdr.setdefault(k.strip().lower(), []).append(v.strip())
    n = int(hdr.get("content-length", ["0"])[0])
    while len(rest) < n:
        rest += s.recv(65536)
    return int(lines[0].split()[1]), hdr

def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=5)

def handshake(s, user, pw, scheme="NTLM", wrap=lambda m: m, q=None):
    q = q or "Cmd=FolderSync&User=%s&DeviceId=NTLM%s&DeviceType=iPhone" % (user, user.upper())
    st, h = req(s, q, N.header(scheme, wrap(N.negotiate())))
    assert st == 401, ("NEGOTIATE leg", st)
    chal = N.challenge_from(h["www-authenticate"][0])
    assert chal, h
    st, h = req(s, q, N.header(scheme, wrap(N.authenticate(chal, user, pw))))
    assert st == 200, ("AUTHENTICATE leg", st, h)
    assert h["x-exsim-auth-user"] == [user], h
    return h["x-exsim-conn"][0]

# 2. every scheme's handshake through the proxy; then the authenticated
# connection serves requests without Authorization, on the same upstream
for scheme, wrap in (("NTLM", lambda m: m), ("Negotiate", lambda m: m), ("Negotiate", N.spnego_resp)):
    s = conn()
    up = handshake(s, "bob", "Pw-2", scheme, wrap)
    for i in range(3):
        st, h = req(s, "Cmd=Sync&User=bob&DeviceId=NTLMBOB&DeviceType=iPhone")
        assert st == 200, ("later request on an authenticated connection", st)
        assert h["x-exsim-conn"][0] == up, ("moved to another upstream connection", up, h)
        assert h["x-exsim-auth-user"] == ["bob"]
    s.close()
print("NTLM, Negotiate and SPNEGO handshakes pass; the connection stays bob's")

# 3. an unauthenticated client never rides bob's connection, whether bob's
# client is still connected or has gone, for many tries
holders = []
for i in range(4):
    s = conn()
    handshake(s, "bob", "Pw-2")
    holders.append(s)
for i in range(30):
    s = conn()
    st, h = req(s, "Cmd=Sync&User=bob&DeviceId=NTLMBOB&DeviceType=iPhone")
    assert st == 401, ("a client without credentials got %d on an authenticated connection" % st, h)
    s.close()
for s in holders:
    s.close()
time.sleep(0.2)
for i in range(30):
    s = conn()
    st, h = req(s, "Cmd=Sync&User=bob&DeviceId=NTLMBOB&DeviceType=iPhone")
    assert st == 401, ("after bob left, a client without credentials got %d" % st, h)
    s.close()
print("60 clients without credentials: 401 every time")

# 4. the identity of requests on an NTLM connection is the NTLM user, not
# the query's User=
s = conn()
handshake(s, "bob", "Pw-2")
st, h = req(s, "Cmd=Sync&User=alice&DeviceId=NTLMBOB&DeviceType=iPhone")
assert st == 200 and h["x-exsim-auth-user"] == ["bob"], (st, h)
s.close()
time.sleep(0.3)
last = [json.loads(l) for l in open(log)][-1]
assert last["user"] == "bob", ("the access log binds the query's user", last)
print("a request on bob's connection with User=alice is logged as bob")

# 5. the private upstream connection ends (Exchange drops it, as IIS does
# an idle one): the client connection ends with it rather than go on over
# another upstream connection that never saw the handshake
s = conn()
handshake(s, "bob", "Pw-2")
st, h = req(s, "Cmd=Sync&User=bob&DeviceId=NTLMBOB&DeviceType=iPhone", extra="X-Exsim-Close: 1\r\n")
assert st == 200, st
s.settimeout(3)
try:
    rest = s.recv(1)
except ConnectionResetError:
    rest = b""
assert rest == b"", ("the client connection outlived its private upstream connection", rest)
s.close()
s = conn()
st, h = req(s, "Cmd=Sync&User=bob&DeviceId=NTLMBOB&DeviceType=iPhone")
assert st == 401, ("a new client connection rode an authenticated upstream", st)
s.close()
print("a lost private connection closes the client's; the next one starts unauthenticated")
PY
eg_stop_clean proxy
eg_pass "NTLM and Negotiate handshakes pass through; authenticated connections stay private"
