#!/usr/bin/env bash
# The admin API end to end over HTTPS (redis-server, the Exchange simulator,
# `easgate proxy`, `easgate core` with core.listen + core.tls, `easgate admin`):
#   - no default password: init-admin refuses weak or empty passwords;
#   - a device the proxy turned away (unknown_devices: block: Exchange
#     authenticated nobody) is only pending (`easgate admin pending`), not
#     registered; a viewer cannot approve it; an admin approves it with its
#     user and it is listed by `easgate admin devices list` as unmanaged;
#   - an admin block through the API blocks its next ActiveSync request < 1 s;
#   - a check-in with jailbroken: true blocks it (grace period 0) < 1 s;
#   - a viewer cannot mutate (403) and nothing changes;
#   - bad JSON, unknown fields, wrong types, oversized bodies, malformed
#     HTTP: 400/413, nothing changes, the API keeps answering;
#   - the audit log names who, what and from where;
#   - restarting the core keeps devices, states, accounts and tokens.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl python3 openssl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }
CERTS=$(eg_certs)

cport=$(eg_port)
eg_redis
eg_exsim

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
compliance:
  unmanaged_devices: block
  block_jailbroken: true
  grace_period: 0s
EOF
eg_conf -w 1 - <<EOF
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
  tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
  api_max_body: 4k
EOF
C=(-c "$TMP/easgate.yaml")
EG="$BUILD/easgate"

# 1. Accounts: no default, weak passwords refused.
printf '' | "$EG" core init-admin "${C[@]}" --user root 2>/dev/null && eg_fail "an empty password was accepted"
echo 'password' | "$EG" core init-admin "${C[@]}" --user root 2>/dev/null && eg_fail "a weak password was accepted"
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null || eg_fail "init-admin failed"
echo 'viewing is fun 42' | "$EG" core init-admin "${C[@]}" --user vera --role viewer >/dev/null ||
  eg_fail "init-admin --role viewer failed"
ADMIN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
VIEWER=$("$EG" core token "${C[@]}" --user vera --role viewer 2>/dev/null)
AGENT=$("$EG" core token "${C[@]}" --user root --role device --name agent 2>/dev/null)
[[ $ADMIN == egt_* && $VIEWER == egt_* && $AGENT == egt_* ]] || eg_fail "tokens not minted"

start_core() {
  eg_stack core "$TMP/easgate.yaml"
  for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
  grep -q "admin API on https://127.0.0.1:$cport" "$TMP/core.log" || eg_fail "the admin API did not start"
}
start_core
eg_stack proxy "$TMP/easgate.yaml"
metrics() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }
metrics | eg_has '^easgate_redis_connected' || { echo "SKIP: proxy state store not wired"; exit 77; }
for _ in $(seq 50); do
  [ "$(metrics | awk '/^easgate_redis_connected /{print $2}')" = 2 ] && break
  sleep 0.1
done

URL="https://127.0.0.1:$cport"
admin() { "$EG" admin --url "$URL" --cacert "$CERTS/ca.crt" "$@"; }
# api TOKEN METHOD PATH [BODY]: prints "STATUS BODY"
api() {
  local tok=$1 m=$2 p=$3; shift 3
  local args=(-s --max-time 10 --cacert "$CERTS/ca.crt" -o "$TMP/api.out" -w '%{http_code}' -X "$m"
              -H "Authorization: Bearer $tok")
  [ $# -gt 0 ] && args+=(-H 'Content-Type: application/json' --data-binary "$1")
  local st; st=$(curl "${args[@]}" "$URL$p")
  echo "$st $(cat "$TMP/api.out")"
}

EAS=/Microsoft-Server-ActiveSync
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
send() {
  curl -s --max-time 10 -D "$TMP/h" -o "$TMP/b" -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/req" \
    "http://127.0.0.1:$proxy_port$EAS?Cmd=FolderSync&User=$2&DeviceId=$1&DeviceType=iPhone" || true
  fwd=0; grep -qi '^X-Exsim-Cmd:' "$TMP/h" && fwd=1
  return 0
}
passes() { send "$1" "$2"; [ $fwd = 1 ]; }
blocked() { send "$1" "$2"; [ $fwd = 0 ]; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
within() {
  local ms=$1; shift
  local t0; t0=$(ms_now)
  until "$@"; do
    [ $(( $(ms_now) - t0 )) -lt "$ms" ] || return 1
    sleep 0.05
  done
  echo "  '$*' after $(( $(ms_now) - t0 )) ms"
}
ver() { redis-cli -p "$redis_port" HGET easgate:dev:PHONE0001 version; }

# 2. Turned away by a proxy: pending only; approved by an admin: unmanaged
#    in `easgate admin devices list`.
blocked phone0001 alice@example.com || eg_fail "an unknown device passed"
pending() { admin --token "$VIEWER" pending 2>/dev/null | eg_has "^PHONE0001 *alice@example.com *iPhone"; }
within 3000 pending || eg_fail "the device the proxy turned away is not pending"
admin --token "$VIEWER" devices show PHONE0001 >/dev/null 2>&1 &&
  eg_fail "an unauthenticated sighting registered the device"
[ "$(redis-cli -p "$redis_port" EXISTS easgate:dev:PHONE0001)" = 0 ] ||
  eg_fail "an unauthenticated sighting created a Redis key"
r=$(api "$VIEWER" POST /api/v1/pending/PHONE0001/approve '{}'); [[ $r == 403* ]] || eg_fail "viewer approve: $r"
r=$(api "$ADMIN" POST /api/v1/pending/NOSUCH9/approve '{}'); [[ $r == 404* ]] || eg_fail "approve unknown: $r"
admin --token "$ADMIN" pending approve phone0001 --user alice@example.com |
  eg_has "^PHONE0001: approved" || eg_fail "approve failed"
admin --token "$VIEWER" pending 2>/dev/null | eg_has "^PHONE0001" && eg_fail "an approved device is still pending"
listed() { admin --token "$VIEWER" devices list --managed no 2>/dev/null | eg_has "^PHONE0001 .*unmanaged"; }
within 3000 listed || eg_fail "the device a proxy saw is not listed as unmanaged"
admin --token "$VIEWER" devices list --user alice@example.com | head -1 | eg_has "^DEVICE *USER" ||
  eg_fail "no table header"
admin --token "$VIEWER" --json devices list | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["devices"][0]["managed"] is False' ||
  eg_fail "--json is not the API's JSON"

# 3. Manage + a good check-in: passes. Admin block: blocked within 1 s.
admin --token "$ADMIN" devices manage PHONE0001 >/dev/null || eg_fail "manage failed"
admin --token "$AGENT" checkin PHONE0001 --os iOS --os-version 17.1 --passcode yes \
  --encrypted yes --jailbroken no | eg_has "PHONE0001: allow" || eg_fail "a compliant check-in did not allow"
within 1000 passes phone0001 alice@example.com || eg_fail "the managed, compliant device does not pass"
admin --token "$ADMIN" devices block PHONE0001 --note "lost phone" >/dev/null || eg_fail "block failed"
within 1000 blocked phone0001 alice@example.com || eg_fail "still passes 1 s after the API block"
admin --token "$ADMIN" devices reset PHONE0001 >/dev/null || eg_fail "reset failed"
within 1000 passes phone0001 alice@example.com || eg_fail "does not pass after reset"

# 4. A jailbroken check-in (grace 0) blocks within 1 s; a clean one lets it back.
r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"phone0001","jailbroken":true,"time":1}')
[[ $r == 200* && $r == *'"reason":"jailbroken"'* ]] || eg_fail "jailbroken check-in: $r"
within 1000 blocked phone0001 alice@example.com || eg_fail "still passes 1 s after a jailbroken check-in"
r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"phone0001","jailbroken":false}')
within 1000 passes phone0001 alice@example.com || eg_fail "does not pass after a clean check-in"

# 4b. SIGHUP reloads the rules; check-ins through the API follow them.
printf '  require_passcode: true\n' >>"$TMP/policy.yaml"
kill -HUP "$core_pid"
follows() {
  r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"phone0001","passcode":false}')
  [[ $r == *'"reason":"no-passcode"'* ]]
}
within 3000 follows || eg_fail "API check-ins do not follow reloaded rules: $r"
# The API's check-ins run on the writer, which adopts the reloaded rules itself.
grep -q "re-evaluated with the new compliance rules" "$TMP/core.log" || eg_fail "no reload line"
r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"phone0001","passcode":true}')
within 1000 passes phone0001 alice@example.com || eg_fail "does not pass after a check-in with a passcode"

# 5. Viewer and device tokens cannot mutate; nothing changes.
v0=$(ver); a0=$(admin --token "$VIEWER" --json audit | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["audit"]))')
r=$(api "$VIEWER" POST /api/v1/devices/PHONE0001/block '{}'); [[ $r == 403* ]] || eg_fail "viewer block: $r"
r=$(api "$VIEWER" DELETE /api/v1/devices/PHONE0001); [[ $r == 403* ]] || eg_fail "viewer delete: $r"
r=$(api "$AGENT" POST /api/v1/devices/PHONE0001/wipe '{}'); [[ $r == 403* ]] || eg_fail "device-token wipe: $r"
admin --token "$VIEWER" devices block PHONE0001 2>"$TMP/err" && eg_fail "the CLI reported success for a viewer"
grep -q "read-only" "$TMP/err" || eg_fail "the viewer's error is not readable: $(cat "$TMP/err")"
r=$(api nope GET /api/v1/devices); [[ $r == 401* ]] || eg_fail "no token: $r"

# 6. Bad input: 400/413, nothing changes, the API keeps serving.
for body in '{"note":' '{"note":"x","colour":"red"}' '{"note":7}' '[]' '{"user":"bob"}'; do
  r=$(api "$ADMIN" POST /api/v1/devices/PHONE0001/block "$body")
  [[ $r == 400* && $r == *'"error":'* ]] || eg_fail "body '$body': $r"
done
big=$(python3 -c 'print("{\"note\":\"" + "x"*5000 + "\"}")')
r=$(api "$ADMIN" POST /api/v1/devices/PHONE0001/block "$big"); [[ $r == 413* ]] || eg_fail "oversized body: $r"
r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"PHONE0001","jailbroken":"very"}'); [[ $r == 400* ]] || eg_fail "wrong type: $r"
python3 - "$cport" "$CERTS/ca.crt" <<'PY' || eg_fail "malformed HTTP was not answered with 400"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
for raw in (b"GARBAGE\r\n\r\n", b"GET /api/v1/devices HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5),
                        server_hostname="127.0.0.1")
    s.sendall(raw)
    data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
    s.close()
PY
[ "$(ver)" = "$v0" ] || eg_fail "a rejected request changed the device's version"
a1=$(admin --token "$VIEWER" --json audit | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["audit"]))')
[ "$a0" = "$a1" ] || eg_fail "a rejected request wrote the audit log"

# 7. The audit log: who, what, from where.
admin --token "$VIEWER" audit | grep -E "root +127\.0\.0\.1 +device\.block +PHONE0001 +lost phone" >/dev/null ||
  eg_fail "the audit log lacks the block with who and from where"
admin --token "$VIEWER" audit | grep -E "root +127\.0\.0\.1 +device\.approve +PHONE0001 +alice@example.com" >/dev/null ||
  eg_fail "the audit log lacks the approval"
admin --token "$VIEWER" users | eg_has "^alice@example.com " || eg_fail "users lacks alice"

# 8. Restart: everything kept.
admin --token "$ADMIN" devices quarantine PHONE0001 >/dev/null
v1=$(ver)
kill -TERM "$core_pid"; wait "$core_pid" 2>/dev/null || true
start_core
admin --token "$VIEWER" devices show PHONE0001 | eg_has "^override *quarantine" ||
  eg_fail "the override did not survive a restart"
admin --token "$VIEWER" devices show PHONE0001 | eg_has "lost phone" || eg_fail "history lost"
[ "$(ver)" = "$v1" ] || eg_fail "a restart changed the version ($v1 -> $(ver))"
r=$(api "$AGENT" POST /api/v1/checkin '{"device_id":"PHONE0001"}'); [[ $r == 200* ]] || eg_fail "agent token after restart: $r"
tok=$(echo 'correct horse battery' | admin login --user root) || eg_fail "login after restart"
admin --token "$tok" whoami | eg_has "root (admin)" || eg_fail "session token does not work"

kill -0 "$core_pid" || eg_fail "the core died"
eg_pass "admin API: turned away -> pending, approved -> unmanaged listing, API block < 1 s, jailbroken check-in blocks, viewer 403, bad input 400/413 unchanged, audit, restart keeps everything"
