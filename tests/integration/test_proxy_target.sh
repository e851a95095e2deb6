#!/usr/bin/env bash
# Request-target hygiene: what Exchange (HTTP.sys and ASP.NET) would read
# differently from the proxy never reaches it.
#   - an absolute-form target goes on in origin form; its authority and Host
#     must be one of instances[].server_names (421 Misdirected Request
#     otherwise; an empty list accepts any name);
#   - a fragment, a percent-encoded parameter name, an HTTP/0.9-style request
#     line and OPTIONS with a body get 400 and reach nobody;
# and the proxy keeps serving after each.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

# capture_upstream records each request line exactly as the proxy sent it.
up_port=$(eg_port) any_port=$(eg_port) named_port=$(eg_port) admin_port=$(eg_port)
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$admin_port
  instances:
    - name: any
      listen: 127.0.0.1:$any_port
      upstream: { url: http://127.0.0.1:$up_port }
    - name: named
      listen: 127.0.0.1:$named_port
      server_names: [mail.example.com, "*.corp.example"]
      upstream: { url: http://127.0.0.1:$up_port }
log: { access: "$TMP/access.log", level: info }
YAML
eg_start upstream python3 "$SRC/tests/integration/capture_upstream.py" "$up_port" "$TMP/capture.jsonl"
eg_wait_port "$up_port"
eg_stack proxy "$TMP/easgate.yaml"
grep -q "instance any: no server_names" "$TMP/proxy.log" ||
  eg_fail "no warning at start for an instance that accepts any name"

out=$(python3 - "$any_port" "$named_port" "$TMP/capture.jsonl" <<'PY' 2>&1) || eg_fail "request targets: $out"
import json, socket, sys, time
any_port, named_port, cap = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
Q = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=TGT1&DeviceType=iPhone"

def send(port, raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(raw.encode())
    d = b""
    try:
        while b"\r\n\r\n" not in d:
            x = s.recv(65536)
            if not x:
                break
            d += x
    except socket.timeout:
        pass
    s.close()
    return int(d.split()[1]) if d.startswith(b"HTTP/1.") else 0

def captured():
    try:
        return [json.loads(l) for l in open(cap)]
    except FileNotFoundError:
        return []

def post(target, host="localhost", extra=""):
    return "POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 0\r\n\r\n" % (target, host, extra)

# absolute form: rewritten to origin form, authority dropped
n = len(captured())
st = send(any_port, post("http://evil.example" + Q))
time.sleep(0.1)
new = captured()[n:]
assert st == 200 and len(new) == 1, (st, new)
assert new[0]["line"] == "POST %s HTTP/1.1" % Q, new[0]["line"]
st = send(any_port, post("HTTPS://Evil.Example:8443" + Q))
time.sleep(0.1)
assert st == 200 and captured()[-1]["line"] == "POST %s HTTP/1.1" % Q, captured()[-1]
print("absolute form goes on as origin form")

# server_names: authority and Host checked, case-insensitive, port ignored
cases = [
    (post(Q, "mail.example.com"), 200),
    (post(Q, "MAIL.Example.COM:443"), 200),
    (post(Q, "eas.corp.example"), 200),
    (post(Q, "evil.example"), 421),
    (post(Q, "corp.example"), 421),
    (post(Q, "mail.example.com.evil"), 421),
    (post(Q, "[::1]"), 421),
    (post("http://evil.example" + Q, "mail.example.com"), 421),
    (post("http://mail.example.com" + Q, "evil.example"), 421),
    (post("http://mail.example.com" + Q, "mail.example.com"), 200),
    ("POST %s HTTP/1.1\r\nContent-Length: 0\r\n\r\n" % Q, 400),  # HTTP/1.1 without Host
]
for raw, want in cases:
    n = len(captured())
    st = send(named_port, raw)
    time.sleep(0.05)
    reached = len(captured()) - n
    assert st == want, (raw.split("\r\n")[:2], st, want)
    assert reached == (1 if want == 200 else 0), (raw.split("\r\n")[:2], "reached upstream", reached)
print("server_names: %d cases" % len(cases))

# what the server would read differently: 400, nothing forwarded
bad = {
    "fragment": post(Q + "#x"),
    "fragment in path": post("/Microsoft-Server-ActiveSync#?Cmd=Sync&DeviceId=X&DeviceType=T"),
    "encoded name": post(Q + "&Device%49d=OTHER"),
    "%u-encoded name": post(Q + "&Device%u0049d=OTHER"),
    "HTTP/0.9 line": "POST %s\r\n\r\n" % Q,
    "HTTP/0.9 version": "POST %s HTTP/0.9\r\nHost: x\r\n\r\n" % Q,
    "OPTIONS with a body": "OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "OPTIONS chunked": "OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}
for name, raw in bad.items():
    n = len(captured())
    st = send(any_port, raw)
    time.sleep(0.05)
    assert st == 400, (name, st)
    assert len(captured()) == n, (name, "reached upstream")
print("%d malformed targets: 400, nothing forwarded" % len(bad))

assert send(any_port, post(Q)) == 200
assert send(any_port, "OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\n\r\n") == 200
print("still serving")
PY
grep -q "absolute form goes on as origin form" <<<"$out" || eg_fail "absolute form: $out"
grep -q "server_names: 11 cases" <<<"$out" || eg_fail "server_names: $out"
grep -q "8 malformed targets: 400" <<<"$out" || eg_fail "malformed targets: $out"
grep -q "still serving" <<<"$out" || eg_fail "after the refusals: $out"
grep -q '"reason":"misdirected-request".*"status":421' "$TMP/access.log" || eg_fail "access log: no misdirected request"
eg_stop_clean proxy
eg_pass "request targets: origin form, server names, no fragments or disguised names"
