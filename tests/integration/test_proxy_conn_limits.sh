#!/usr/bin/env bash
# Nothing a connection was admitted with lasts for ever.
#   - Revocation reaches open connections: when a CRL reload revokes a
#     client certificate (SIGHUP, or the file replaced), the connections
#     that presented it are closed within 1 s, a held Ping answered first;
#     another device's connections and its held Ping are untouched, and the
#     revoked certificate cannot connect again.
#   - limits.max_requests_per_connection: the last request is answered with
#     Connection: close and the connection closes.
#   - timeouts.max_connection_age: a held Ping is answered at the age limit
#     (Connection: close), an idle connection closes.
# Real TLS with client certificates from a device CA and an openssl-made CRL.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in python3 openssl; do command -v $t >/dev/null || exit 77; done
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
PKI="$TMP/pki"
mkdir -p "$PKI"
touch "$PKI/index.txt"
echo 01 >"$PKI/crlnumber"
cat >"$PKI/ca.cnf" <<CNF
[ ca ]
default_ca = dca
[ dca ]
database = $PKI/index.txt
crlnumber = $PKI/crlnumber
default_md = sha256
default_crl_days = 30
certificate = $CERTS/device-ca.crt
private_key = $CERTS/device-ca.key
CNF
device_cert() { # device_cert NAME DEVICEID: a client certificate bound as enrollment binds it
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" 2>/dev/null
  openssl req -new -key "$PKI/$1.key" -subj "/CN=$1" -out "$PKI/$1.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" \
    "extendedKeyUsage=clientAuth" "subjectAltName=URI:urn:easgate:device:$2" >"$PKI/$1.ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$CERTS/device-ca.crt" -CAkey "$CERTS/device-ca.key" \
    -CAcreateserial -days 30 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" 2>/dev/null
}
device_cert alice REVOKE1
device_cert bob REVOKE2
openssl ca -config "$PKI/ca.cnf" -gencrl -out "$PKI/crl.pem" 2>/dev/null || eg_fail "openssl ca -gencrl"

eg_exsim --ping-cap 120
dev_port=$(eg_port) lim_port=$(eg_port) admin_port=$(eg_port) admin2_port=$(eg_port)
cat >"$TMP/dev.yaml" <<YAML
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$admin_port
  instances:
    - name: dev
      listen: 127.0.0.1:$dev_port
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $CERTS/device-ca.crt, crl: $PKI/crl.pem, required: true }
      upstream: { url: http://127.0.0.1:$exsim_port }
log: { access: "$TMP/access.log", level: info }
YAML
cat >"$TMP/lim.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$admin2_port
  timeouts: { max_connection_age: 2s }
  limits: { max_requests_per_connection: 3 }
  instances:
    - name: lim
      listen: 127.0.0.1:$lim_port
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: http://127.0.0.1:$exsim_port }
log: { access: "$TMP/access-lim.log", level: info }
YAML
eg_stack proxy "$TMP/dev.yaml"
eg_stack -n lim proxy "$TMP/lim.yaml"

cat >"$TMP/client.py" <<'PY'
import socket, ssl, subprocess, sys, time, urllib.request

CA, PKI = sys.argv[1], sys.argv[2]
PORT, LIM, ADM, PROXY_PID = (int(a) for a in sys.argv[3:7])
PING = b"\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x36\x30\x00\x01\x01"  # HeartbeatInterval 60
FOLDERSYNC = b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01"

def connect(port, who=None):
    ctx = ssl.create_default_context(cafile=CA)
    if who:
        ctx.load_cert_chain("%s/%s.crt" % (PKI, who), "%s/%s.key" % (PKI, who))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost")

def send(s, cmd, user, dev, body):
    s.sendall(("POST /Microsoft-Server-ActiveSync?Cmd=%s&User=%s&DeviceId=%s&DeviceType=iPhone "
               "HTTP/1.1\r\nHost: localhost\r\nMS-ASProtocolVersion: 14.1\r\n"
               "Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: %d\r\n\r\n"
               % (cmd, user, dev, len(body))).encode() + body)

def answer(s, timeout):
    """(status, lower-cased head) of one answer, its body read; None if
    nothing came within timeout; "closed" if the connection ended first."""
    s.settimeout(timeout)
    d = b""
    try:
        while b"\r\n\r\n" not in d:
            x = s.recv(65536)
            if not x:
                return "closed"
            d += x
    except socket.timeout:
        return None
    except (ssl.SSLError, ConnectionError):
        return "closed"
    head, _, rest = d.partition(b"\r\n\r\n")
    n = 0
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        x = s.recv(65536)
        if not x:
            break
        rest += x
    return int(head.split()[1]), head.decode("latin-1").lower()

def closed(s, timeout):
    """Does the peer close s within timeout?"""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except (ssl.SSLError, ConnectionError):
        return True

def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    for l in text.splitlines():
        if l.split(" ")[0] == name:
            return int(float(l.split()[1]))
    return None

def wait_held(port, n):
    for _ in range(100):
        if metric(port, "easgate_held_pings") == n:
            return
        time.sleep(0.05)
    raise AssertionError(("held Pings", metric(port, "easgate_held_pings"), "want", n))

def revoke(who):
    ca = ["openssl", "ca", "-config", PKI + "/ca.cnf"]
    subprocess.run(ca + ["-revoke", "%s/%s.crt" % (PKI, who)], check=True, capture_output=True)
    subprocess.run(ca + ["-gencrl", "-out", PKI + "/crl.new"], check=True, capture_output=True)
    subprocess.run(["mv", PKI + "/crl.new", PKI + "/crl.pem"], check=True)

def is_answer(st):
    return st not in (None, "closed") and st[0] == 200

# ---- revocation ----
a_ping = connect(PORT, "alice")
send(a_ping, "Ping", "alice", "REVOKE1", PING)
a_idle = connect(PORT, "alice")
send(a_idle, "FolderSync", "alice", "REVOKE1", FOLDERSYNC)
st = answer(a_idle, 5)
assert is_answer(st) and "connection: close" not in st[1], st
b_ping = connect(PORT, "bob")
send(b_ping, "Ping", "bob", "REVOKE2", PING)
wait_held(ADM, 2)
assert answer(a_ping, 0.3) is None, "alice's Ping is not held"

revoke("alice")
t0 = time.monotonic()
subprocess.run(["kill", "-HUP", str(PROXY_PID)], check=True)
st = answer(a_ping, 3)
t_ping = time.monotonic() - t0
assert is_answer(st), ("alice's held Ping was not answered", st)
assert "connection: close" in st[1], st[1]
assert closed(a_ping, 2), "alice's Ping connection stays open"
assert closed(a_idle, 2), "alice's idle connection stays open"
t_all = time.monotonic() - t0
assert t_all < 1.0, ("revocation took", t_all)
print("SIGHUP revoked alice: held Ping answered in %.3f s, both connections closed in %.3f s"
      % (t_ping, t_all))
assert answer(b_ping, 1.2) is None, "bob's Ping was cut too"
wait_held(ADM, 1)
try:
    s = connect(PORT, "alice")
    send(s, "FolderSync", "alice", "REVOKE1", FOLDERSYNC)
    st = answer(s, 5)
except (ssl.SSLError, ConnectionError):
    st = "closed"
assert st == "closed", ("alice connected again", st)
s = connect(PORT, "bob")
send(s, "FolderSync", "bob", "REVOKE2", FOLDERSYNC)
assert is_answer(answer(s, 5))
s.close()
print("bob untouched, alice refused")

# the CRL file replaced, no signal: the proxy notices within a second
b_idle = connect(PORT, "bob")
send(b_idle, "FolderSync", "bob", "REVOKE2", FOLDERSYNC)
assert is_answer(answer(b_idle, 5))
revoke("bob")
t0 = time.monotonic()
st = answer(b_ping, 4)
assert is_answer(st) and "connection: close" in st[1], st
assert closed(b_ping, 2) and closed(b_idle, 2), "bob's connections stay open"
t_all = time.monotonic() - t0
assert t_all < 2.0, ("revocation by file took", t_all)
print("CRL file replaced: bob's Ping answered and connections closed in %.3f s" % t_all)

# ---- limits.max_requests_per_connection: 3 ----
s = connect(LIM)
for i in range(1, 4):
    send(s, "FolderSync", "carol", "LIMIT1", FOLDERSYNC)
    st = answer(s, 5)
    assert is_answer(st), (i, st)
    assert ("connection: close" in st[1]) == (i == 3), (i, st[1])
assert closed(s, 2), "the connection stays open after its last request"
print("max_requests_per_connection: the 3rd answer says Connection: close, then closed")

# ---- timeouts.max_connection_age: 2s ----
t0 = time.monotonic()
p = connect(LIM)
send(p, "Ping", "carol", "LIMIT2", PING)
idle = connect(LIM)
send(idle, "FolderSync", "carol", "LIMIT3", FOLDERSYNC)
assert is_answer(answer(idle, 5))
st = answer(p, 6)
t = time.monotonic() - t0
assert is_answer(st) and "connection: close" in st[1], st
assert 1.9 <= t <= 4.0, ("Ping answered at", t)
assert closed(p, 2), "the aged Ping connection stays open"
assert closed(idle, 2), "the aged idle connection stays open"
t = time.monotonic() - t0
assert t <= 4.0, ("idle connection closed at", t)
print("max_connection_age: held Ping answered after %.2f s, connections closed" % t)
PY
out=$(python3 "$TMP/client.py" "$CERTS/ca.crt" "$PKI" "$dev_port" "$lim_port" "$admin_port" \
  "$proxy_pid" 2>&1) || eg_fail "connection limits: $out"
echo "$out"
grep -q "SIGHUP revoked alice" <<<"$out" || eg_fail "revocation by SIGHUP: $out"
grep -q "bob untouched, alice refused" <<<"$out" || eg_fail "other device: $out"
grep -q "CRL file replaced" <<<"$out" || eg_fail "revocation by file: $out"
grep -q "max_requests_per_connection" <<<"$out" || eg_fail "request limit: $out"
grep -q "max_connection_age" <<<"$out" || eg_fail "age limit: $out"
grep -q "closed: its client certificate (CN=alice" "$TMP/proxy.log" || eg_fail "revocation not logged"
eg_stop_clean proxy
eg_stop_clean lim
eg_pass "revoked certificates lose their connections; connections end at their age and request limits"
