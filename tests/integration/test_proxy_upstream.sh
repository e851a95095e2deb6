#!/usr/bin/env bash
# Upstream and connection handling: failover to the next url when one is
# down (the client never sees the failure), the failed url probed back after
# down_time, Expect: 100-continue, connection limits per client address
# (503 + log line).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
command -v python3 >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim exsim2 --tls  # only the second upstream runs at first
exsim1_port=$(eg_port); PX=$(eg_port); ADM=$(eg_port)

cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  timeouts: { upstream_connect: 1s }
  limits: { max_connections_per_client: 3 }
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream:
        url: ["https://127.0.0.1:$exsim1_port", "https://localhost:$exsim2_port"]
        ca: $CERTS/ca.crt
        down_time: 1s
log: { access: "$TMP/access.log", level: info }
YAML

eg_stack proxy "$TMP/easgate.yaml"

EAS="/Microsoft-Server-ActiveSync"
Q="Cmd=FolderSync&User=alice&DeviceId=ABC123&DeviceType=iPhone"
C=(curl -s --max-time 20 --cacert "$CERTS/ca.crt")
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/fs.wbxml" # FolderSync, SyncKey 0
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x36\x30\x00\x01\x01' >"$TMP/ping.wbxml" # Ping, HeartbeatInterval 60
req() { # prints "status pid"
  "${C[@]}" -D "$TMP/h" -o /dev/null -w '%{http_code}' -X POST "https://localhost:$PX$EAS?$Q" \
    -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml" "$@"
  printf ' %s\n' "$(awk 'tolower($1)=="x-exsim-pid:" {print $2}' "$TMP/h" | tr -d '\r')"
}

# 1. failover: every request answered 200 although url 1 is dead
for i in 1 2 3 4; do
  r=$(req)
  [ "${r%% *}" = 200 ] || eg_fail "request $i with url 1 down: $r"
done
grep -q "upstream https://127.0.0.1:$exsim1_port .*marked down" "$TMP/proxy.log" || eg_fail "url 1 not marked down"
eg_pass "failover to the next url, url 1 marked down"

# 2. url 1 comes back: probed after down_time, then used again
eg_exsim exsim1 --tls
sleep 1.2
pids=""
for i in 1 2 3 4 5 6; do pids="$pids $(req | cut -d' ' -f2)"; done
[ "$(echo $pids | tr ' ' '\n' | sort -u | wc -l)" = 2 ] || eg_fail "round robin after recovery: pids $pids"
eg_pass "url 1 probed back, round robin over both"

# 2b. TLS session resumption towards the upstream: concurrent requests need
#     new connections, and those resume the session of the first
cpids=()
# (four: one pooled connection per url is taken, and round robin sends one
# new connection to each url; either may resume)
for i in 1 2 3 4; do
  "${C[@]}" -o /dev/null -X POST -H 'MS-ASProtocolVersion: 14.1' -H 'X-Exsim-Hold-Ms: 700' \
    --data-binary @"$TMP/ping.wbxml" "https://localhost:$PX$EAS?Cmd=Ping&User=a&DeviceId=P$i&DeviceType=T" &
  cpids+=("$!")
done
for p in "${cpids[@]}"; do wait "$p" || true; done
stat_resumed() {
  curl -s --cacert "$CERTS/ca.crt" "https://localhost:$1/exsim/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["resumed"])'
}
resumed=$(( $(stat_resumed "$exsim1_port") + $(stat_resumed "$exsim2_port") ))
[ "$resumed" -gt 0 ] || eg_fail "no upstream TLS session was resumed"
eg_pass "upstream TLS sessions resumed ($resumed)"

# 3. Expect: 100-continue: curl waits for the 100 before sending the body
r=$(req -H 'Expect: 100-continue' --expect100-timeout 5)
[ "${r%% *}" = 200 ] || eg_fail "Expect: 100-continue: $r"
grep -qi '^HTTP/1.1 100' "$TMP/h" || eg_fail "no 100 Continue seen"
eg_pass "Expect: 100-continue"

# 4. per-client connection limit: the fourth connection from one address gets 503
python3 - "$PX" "$CERTS/ca.crt" <<'PY' || eg_fail "connection limit"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
held = []
for i in range(3):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    held.append(s)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
s.sendall(b"GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n\r\n")
d = s.recv(4096)
assert d.startswith(b"HTTP/1.1 503"), d[:40]
assert b"Retry-After:" in d, d
for h in held:
    h.close()
# once they are closed, a new connection is served again
import time
time.sleep(0.3)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
s.sendall(b"GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n\r\n")
d = s.recv(4096)
assert d.startswith(b"HTTP/1.1 200"), d[:40]
PY
grep -q "refused: limits.max_connections_per_client" "$TMP/proxy.log" || eg_fail "no log line for the refused connection"
curl -s "http://127.0.0.1:$ADM/metrics" | eg_has -E 'easgate_rejected_connections_total\{limit="per_client"\} [1-9]' \
  || eg_fail "refusal not counted"
eg_pass "per-client connection limit: 503 + Retry-After + log line"

kill -TERM "$proxy_pid"
wait "$proxy_pid" || eg_fail "proxy exit status $?"
grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/proxy.log" && eg_fail "sanitizer report"
eg_pass "clean exit"
