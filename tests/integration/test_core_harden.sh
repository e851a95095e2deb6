#!/usr/bin/env bash
# The core against an attacker with raw clients (issue 19, point 4): each
# section is one attack, written to fail before its defence existed.
#   1. file modes: registry.db, -wal and -shm are 0600 under umask 022;
#   2. an invitation's "expires" of 106751991167d (now + it overflows int64:
#      a UBSan abort, or "never" in the plain build) is a 400;
#   3. names cannot be told apart by timing: a login with an unknown name
#      takes as long as one with a known name and a wrong password;
#   4. four streams of logins do not slow another admin's requests (argon2
#      runs on core.login_threads, never on the thread that serves the API);
#   5. guessing backs off per account and per address (429 with Retry-After,
#      even for the right password), known and unknown names alike, and an
#      admin lifts it with `easgate admin lockouts lift`; a session guessing
#      its account's old password (POST /api/v1/password, argon2 on the
#      writer) backs off the same way;
#   6. failed logins are one audit row per account and address per window
#      (the first at once, the rest with their count when the window ends);
#   7. one client address holds at most max_conns_per_client connections to
#      the API and to the enrollment server (1,030 kept both down), and
#      another address is served meanwhile (16 for the API here: section 4's
#      five clients close and reconnect for every login, and a closed
#      connection counts until the server has seen its end);
#   8. a request must arrive whole within the head timeout from its first
#      byte, on a kept-alive connection too (it had the 30 s idle time), and
#      a connection that sends nothing is closed after it;
#   9. enrollment refusals back off per address and per key (429 with
#      Retry-After; 5,500 a second were answered, each with a log line),
#      and a flood of them writes no more log lines.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server curl python3 openssl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }

CERTS=$(eg_certs)
cport=$(eg_port)
eport=$(eg_port)
eg_redis
echo 'unknown_devices: allow' >"$TMP/policy.yaml"
eg_conf -w 1 - <<EOF
core:
  database: registry.db
  listen: 127.0.0.1:$cport
  login_free_failures: 1000000
  login_audit_window: 10s
  api_max_conns_per_client: 16
  api_head_timeout: 2s
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  listen: 127.0.0.1:$eport
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
  max_conns_per_client: 8
  head_timeout: 2s
  refusal_free_failures: 3
  refusal_backoff: 2s
EOF
C=(-c "$TMP/easgate.yaml")
EG="$BUILD/easgate"
URL="http://127.0.0.1:$cport"
EURL="https://127.0.0.1:$eport"
"$EG" core init-ca "${C[@]}" >"$TMP/init-ca.log" 2>&1 || eg_fail "init-ca failed"

# 1. File modes, whatever umask the service manager left.
umask 022
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null ||
  eg_fail "init-admin failed"
ADMIN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 50); do [ -e "$TMP/registry.db-shm" ] && break; sleep 0.1; done
for f in registry.db registry.db-wal registry.db-shm; do
  [ -e "$TMP/$f" ] || eg_fail "$f does not exist while the core runs"
  m=$(stat -c %a "$TMP/$f")
  [ "$m" = 600 ] || eg_fail "$f has mode $m, not 600"
done
eg_pass "registry.db, -wal and -shm are 0600 under umask 022"

# 2. An invitation whose deadline is past the end of int64 time.
# eapi TOKEN METHOD PATH [BODY]: prints "STATUS BODY" from the enrollment server
eapi() {
  local tok=$1 m=$2 p=$3; shift 3
  local args=(-s --max-time 10 --cacert "$CERTS/ca.crt" -o "$TMP/eapi.out" -w '%{http_code}' -X "$m"
              -H "Authorization: Bearer $tok")
  [ $# -gt 0 ] && args+=(-H 'Content-Type: application/json' --data-binary "$1")
  local st; st=$(curl "${args[@]}" "$EURL$p")
  echo "$st $(cat "$TMP/eapi.out")"
}
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"106751991167d"}')
[[ $r == 400* ]] || eg_fail "an expires past the end of time: $r"
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"3651d"}')
[[ $r == 400* ]] || eg_fail "an expires over ten years: $r"
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"30d"}')
[[ $r == 201* ]] || eg_fail "an expires of 30d: $r"
kill -0 "$core_pid" || eg_fail "the core died"
eg_pass "expires: past the end of time and over ten years are 400, 30d is 201"

# A raw HTTP client for the sections below (python3 in $TMP/raw.py).
cat >"$TMP/raw.py" <<'PY'
import json, socket, statistics, sys, threading, time

def req(port, method, path, body=None, token=None, src="127.0.0.1", timeout=10):
    """One request on its own connection from address src: (status, headers, body, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(src, 0))
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(data)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    t0 = time.monotonic()
    s.sendall(head.encode() + b"\r\n" + data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    t = time.monotonic() - t0
    s.close()
    h, _, b = out.partition(b"\r\n\r\n")
    lines = h.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), hdrs, b.decode(), t

def login(port, user, pw, src="127.0.0.1"):
    return req(port, "POST", "/api/v1/login", {"user": user, "password": pw}, src=src)
PY

# 3. Timing: twelve known and twelve unknown names, interleaved.
python3 - "$TMP" "$cport" <<'PY' || eg_fail "an unknown name answers faster than a known one"
import statistics, sys
sys.path.insert(0, sys.argv[1])
from raw import login
port = int(sys.argv[2])
known, unknown = [], []
for i in range(12):
    st, _, _, t = login(port, "root", "wrong password %d" % i)
    assert st == 401, st
    known.append(t)
    st, _, _, t = login(port, "nosuch%d" % i, "wrong password %d" % i)
    assert st == 401, st
    unknown.append(t)
mk, mu = statistics.median(known), statistics.median(unknown)
print("  median login: known name %.1f ms, unknown name %.1f ms" % (mk * 1000, mu * 1000))
# The attack's signal was 8x (2.5 ms against 20 ms); a shared machine's
# noise stays well inside these bounds.
assert 0.4 * mk < mu < 2.5 * mk
PY
eg_pass "a known and an unknown name take the same time"

# 4. Another admin's requests while four login streams run.
python3 - "$TMP" "$cport" "$ADMIN" <<'PY' || eg_fail "login streams slow another admin's requests"
import statistics, sys, threading, time
sys.path.insert(0, sys.argv[1])
from raw import login, req
port, tok = int(sys.argv[2]), sys.argv[3]
def whoami():
    st, _, _, t = req(port, "GET", "/api/v1/whoami", token=tok)
    assert st == 200, st
    return t
base = sorted(whoami() for _ in range(20))
stop = time.monotonic() + 4
logins = [0]
def stream():
    while time.monotonic() < stop:
        st = login(port, "root", "a wrong password")[0]
        assert st in (401, 503), st
        logins[0] += 1
ts = [threading.Thread(target=stream) for _ in range(4)]
for t in ts:
    t.start()
time.sleep(0.5)
busy = []
while time.monotonic() < stop - 0.2:
    busy.append(whoami())
    time.sleep(0.05)
for t in ts:
    t.join()
busy.sort()
p = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] * 1000
print("  whoami alone p50 %.1f ms p90 %.1f ms; with 4 login streams (%d logins) p50 %.1f ms p90 %.1f ms"
      % (p(base, .5), p(base, .9), logins[0], p(busy, .5), p(busy, .9)))
assert p(busy, .9) < 100, "p90 over 100 ms"
PY
eg_pass "four login streams leave another admin's requests fast"

# Sections 5 and 6 run with a small back-off: 3 free failures, 2 s doubling to 8 s.
eg_stop_clean core
sed -i 's/login_free_failures: 1000000/login_free_failures: 3\n  login_backoff: 2s\n  login_backoff_max: 8s/' "$TMP/easgate.yaml"
eg_stack core "$TMP/easgate.yaml"

# 5. Back-off per account and per address; lifted by an admin.
admin() { "$EG" admin --url "$URL" "$@"; }
python3 - "$TMP" "$cport" <<'PY' || eg_fail "guessing is not slowed"
import sys, time
sys.path.insert(0, sys.argv[1])
from raw import login
port = int(sys.argv[2])
for i in range(3):  # free
    assert login(port, "root", "guess %d" % i)[0] == 401
st, h, b, _ = login(port, "root", "guess 3")
assert st == 401, (st, b)  # the fourth is checked, and starts the wait
st, h, b, _ = login(port, "root", "correct horse battery")
assert st == 429 and h.get("retry-after") in ("1", "2"), (st, h, b)  # even the right password waits
st, h, b, _ = login(port, "nosuch", "guess")  # any name from this address
assert st == 429, (st, b)
st, h, b, _ = login(port, "root", "guess", src="127.0.0.2")  # root from anywhere
assert st == 429, (st, b)
st, h, b, _ = login(port, "nosuch2", "guess", src="127.0.0.3")  # others elsewhere are not held
assert st == 401, (st, b)
time.sleep(2.1)
assert login(port, "root", "guess 5")[0] == 401  # the wait is over: checked, and doubled
st, h, b, _ = login(port, "root", "guess 6")
assert st == 429 and h.get("retry-after") in ("3", "4"), (st, h, b)
print("  3 free failures, then waits of 2 s and 4 s; 429 with Retry-After for any name")
PY
# One listing for both: the waits are seconds long, and a second call of a
# sanitized CLI on a busy machine came after the address's wait had ended.
held=$(admin --token "$ADMIN" lockouts)
printf '%s\n' "$held" | eg_has "^account *root " || eg_fail "root is not listed as waiting: $held"
printf '%s\n' "$held" | eg_has "^address *127.0.0.1 " || eg_fail "127.0.0.1 is not listed: $held"
admin --token "$ADMIN" lockouts lift account root | eg_has "lifted" || eg_fail "lift account failed"
admin --token "$ADMIN" lockouts lift address 127.0.0.1 | eg_has "lifted" || eg_fail "lift address failed"
tok=$(echo 'correct horse battery' | admin login --user root) || eg_fail "no login after the lift"
# The old password of a password change is guessed no faster.
python3 - "$TMP" "$cport" "$tok" <<'PY' || eg_fail "a session guesses the old password freely"
import sys
sys.path.insert(0, sys.argv[1])
from raw import req
port, tok = int(sys.argv[2]), sys.argv[3]
body = {"old_password": "a wrong guess", "password": "another horse battery 9"}
got = [req(port, "POST", "/api/v1/password", body, token=tok)[0] for _ in range(5)]
assert got == [403, 403, 403, 403, 429], got
print("  password change with wrong old passwords: %s" % got)
PY
admin --token "$ADMIN" lockouts lift account root >/dev/null || eg_fail "lift failed"
admin --token "$ADMIN" audit --target root | eg_has "login.lift" || eg_fail "the lift is not audited"
eg_pass "back-off per account and per address, 429 + Retry-After, lifted by an admin"

# 6. One audit row per account and address per window (10 s here: the 40
#    logins must fit in it under a sanitizer too).
rows() { admin --token "$ADMIN" --json audit --target "$1" --limit 1000 |
  python3 -c 'import json,sys; print(sum(1 for a in json.load(sys.stdin)["audit"] if a["action"] == "login-failed" and a["address"] == sys.argv[1]))' "$2"; }
before=$(rows flood 127.0.0.4)
t0=$(date +%s%N)
python3 - "$TMP" "$cport" <<'PY' || eg_fail "the flood did not run"
import sys
sys.path.insert(0, sys.argv[1])
from raw import login
port = int(sys.argv[2])
seen = set(login(port, "flood", "guess %d" % i, src="127.0.0.4")[0] for i in range(40))
assert seen <= {401, 429}, seen
PY
[ "$(rows flood 127.0.0.4)" = $((before + 1)) ] || eg_fail "40 failures wrote $(rows flood 127.0.0.4) rows in the window"
left=$(( 11500 - ($(date +%s%N) - t0) / 1000000 ))
[ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
# The window starts at the first failure, whose argon2 may finish a few
# seconds after t0 on a busy machine, and its row comes at the writer's
# next tick after the window.
for _ in $(seq 30); do [ "$(rows flood 127.0.0.4)" = $((before + 2)) ] && break; sleep 0.5; done
n=$(rows flood 127.0.0.4)
[ "$n" = $((before + 2)) ] || eg_fail "after the window: $n rows, want $((before + 2))"
admin --token "$ADMIN" audit --target flood | eg_has "39 more failed or refused logins in the 10s" ||
  eg_fail "the window's row does not count the rest: $(admin --token "$ADMIN" audit --target flood)"
eg_pass "40 failed logins: one row at once, one with the count of the other 39 when the window ends"

# 7. Connections per client address, on both servers.
python3 - "$TMP" "$cport" "$eport" "$CERTS/ca.crt" <<'PY' || eg_fail "one address holds a listener"
import resource, select, socket, ssl, sys, time
sys.path.insert(0, sys.argv[1])
from raw import req
port, eport, ca = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
def closed(s):
    p = select.poll()  # select() takes no fd past 1023
    p.register(s, select.POLLIN)
    if not p.poll(0):
        return False
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
for p, name, cap in ((port, "API", 16), (eport, "enrollment", 8)):
    # Kept open is counted after the first cap + 1 connections: by the end
    # of all 1030 (seconds under a sanitizer on a busy machine) the TLS
    # listener's head timeout (2 s) has closed its first, idle ones too.
    held, open_ = [], -1
    for i in range(1030):
        try:
            held.append(socket.create_connection(("127.0.0.1", p), timeout=5))
        except OSError:
            break
        if i == cap:
            time.sleep(0.5)
            open_ = sum(1 for s in held if not closed(s))
    # The server closes the ones past the cap as it accepts them: a
    # sanitized core on a busy machine may take seconds for a thousand.
    deadline = time.monotonic() + 15
    while True:
        time.sleep(0.5)
        at_end = sum(1 for s in held if not closed(s))
        if at_end <= cap or time.monotonic() > deadline:
            break
    assert at_end <= cap, (at_end, cap)
    if p == port:
        st = req(port, "GET", "/healthz", src="127.0.0.2")[0]
    else:
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", p), timeout=5, source_address=("127.0.0.2", 0))
        t = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        t.sendall(b"GET /enroll/v1/ca HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st = int(t.recv(64).split()[1])
        t.close()
    for s in held:
        s.close()
    print("  %s: %d connections from one address, %d kept open; another address: %d" % (name, len(held), open_, st))
    assert open_ == cap, (open_, cap)
    assert st == 200, st
PY
eg_pass "one address holds 16 connections of the API and 8 of the enrollment server, another is served"

# 8. The head timeout (2 s here) runs from a request's first byte.
python3 - "$cport" "$eport" <<'PY' || eg_fail "a slow client keeps its connection"
import select, socket, sys, time
port, eport = int(sys.argv[1]), int(sys.argv[2])
def dribble(s, data, limit=8):
    """Send a byte every 0.2 s until the server closes: the seconds it took."""
    t0 = time.monotonic()
    for ch in data:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except ConnectionResetError:
                return time.monotonic() - t0
        try:
            s.send(bytes([ch]))
        except OSError:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            break
    return time.monotonic() - t0
slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
s = socket.create_connection(("127.0.0.1", port))
t = dribble(s, slow)
print("  first request dribbled: closed after %.1f s" % t)
assert 1.5 < t < 4, t
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
assert b" 200 " in s.recv(4096)
time.sleep(3)  # idle, within the 30 s idle time
t = dribble(s, slow)
print("  kept-alive request dribbled after 3 s idle: closed after %.1f s" % t)
assert 1.5 < t < 4, t
s = socket.create_connection(("127.0.0.1", eport))
t0 = time.monotonic()
select.select([s], [], [], 8)
t = time.monotonic() - t0
print("  enrollment server, nothing sent: closed after %.1f s" % t)
assert 1.5 < t < 4, t
PY
eg_pass "a request arrives whole within the head timeout, kept alive or not"

# 9. Enrollment refusals, per address and per key.
python3 - "$eport" "$CERTS/ca.crt" "$TMP/core.log" <<'PY' || eg_fail "enrollment refusals are not limited"
import json, random, socket, ssl, sys, time
eport, ca, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def enroll(key, src="127.0.0.1"):
    raw = socket.create_connection(("127.0.0.1", eport), timeout=10, source_address=(src, 0))
    t = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    body = json.dumps({"key": key, "device_id": "PROBE1", "generate_key": True}).encode()
    t.sendall(b"POST /enroll/v1/enroll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    out = b""
    while True:
        b = t.recv(65536)
        if not b:
            break
        out += b
    t.close()
    head = out.split(b"\r\n\r\n")[0].decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in head[1:])}
    return int(head[0].split()[1]), hdrs
A = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
def wrong_key():
    return "".join(random.choice(A) for _ in range(28))
def lines():
    return sum(1 for l in open(log) if "refused" in l and "from 127.0.0.1 " in l)
for i in range(4):  # three free, the fourth heard and starting the wait
    st, h = enroll(wrong_key())
    assert st == 403, st
st, h = enroll(wrong_key())
assert st == 429 and h.get("retry-after") in ("1", "2"), (st, h)
assert enroll(wrong_key(), src="127.0.0.7")[0] == 403  # other addresses are apart
print("  per address: 4 refusals heard, then 429 with Retry-After: %s" % h["retry-after"])
key = wrong_key()  # one key from many addresses
for i in range(4):
    assert enroll(key, src="127.0.0.%d" % (10 + i))[0] == 403
st, h = enroll(key, src="127.0.0.20")
assert st == 429, st
print("  per key: 4 refusals from 4 addresses, then 429 from a fifth")
before = lines()
for i in range(50):
    assert enroll(wrong_key())[0] == 429
assert lines() == before, (before, lines())
backs = sum(1 for l in open(log) if "refusals from 127.0.0.1: it backs off now" in l)
print("  50 more refusals from the address: no log line (%d refusal lines, %d back-off line)" % (before, backs))
assert before <= 4 and backs == 1, (before, backs)
PY
eg_pass "enrollment refusals back off per address and per key; the flood is not logged"

# Nothing above left a sanitizer report, and the core stops cleanly.
eg_stop_clean core
