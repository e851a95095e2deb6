#!/usr/bin/env bash
# Devices seen but never accepted (docs/security.md section 5, docs/core.md
# section 5), end to end (redis-server, the Exchange simulator, two
# `easgate proxy`, `easgate core` with core.pending_max: 100):
#   - a flood of 5,000 made-up DeviceIds through a proxy with
#     unknown_devices: block (the proxy answers them itself, Exchange
#     authenticates nobody) leaves the registry and Redis without a single
#     device, and the pending table at its cap, the newest kept;
#   - a request Exchange answers 2xx (a proxy with unknown_devices: allow)
#     registers the device, its sighting carried auth: exchange, its user
#     bound, its hash written;
#   - an admin approves a pending device: it becomes a registry row, its
#     Redis hash appears, it is no longer pending, the claimed user is not
#     bound.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli python3 sqlite3; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "SKIP: no easgate/exsim in $BUILD"; exit 77; }

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
compliance:
  unmanaged_devices: block
EOF
eg_stack -n core core - <<EOF
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
  pending_max: 100
EOF
C=(-c "$TMP/easgate.yaml")
EG=$BUILD/easgate
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
eg_stack proxy "$TMP/easgate.yaml"
# A second proxy on its own ports whose policy lets unknown devices through
# to Exchange (the core keeps reading policy.yaml; the proxy's own file has
# no compliance section, which would contradict unknown_devices: allow).
sed '/^compliance:/d; /unmanaged_devices:/d; s/^unknown_devices: block/unknown_devices: allow/' \
  "$TMP/policy.yaml" >"$TMP/allow.yaml"
p2=$(eg_port) a2=$(eg_port)
sed "s/127.0.0.1:$proxy_port\$/127.0.0.1:$p2/; s/127.0.0.1:$admin_port\$/127.0.0.1:$a2/;
     s/^policy: policy.yaml/policy: allow.yaml/" "$TMP/easgate.yaml" >"$TMP/allow-proxy.yaml"
eg_stack -n proxy2 proxy "$TMP/allow-proxy.yaml"
connected() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk '/^easgate_redis_connected /{print $2}'; }
for _ in $(seq 50); do
  [ "$(connected "$admin_port")" = 2 ] && [ "$(connected "$a2")" = 2 ] && break
  sleep 0.1
done
[ "$(connected "$admin_port")" = 2 ] || { echo "SKIP: proxy state store not wired"; exit 77; }

R() { redis-cli -p "$redis_port" "$@"; }
db() { sqlite3 "$TMP/registry.db" "$@"; }
devkeys() { R --scan --pattern 'easgate:dev:*' | wc -l; }
pending() { [ "$(db "SELECT COUNT(*) FROM pending_devices WHERE device_id = '$1'")" = 1 ]; }
within() { # MS CMD...: retry CMD until it succeeds or MS milliseconds pass
  local end=$(($(date +%s%N) / 1000000 + $1)); shift
  until "$@"; do
    [ $(($(date +%s%N) / 1000000)) -lt $end ] || return 1
    sleep 0.1
  done
}

# 1. The flood: 5,000 made-up DeviceIds over a few keep-alive connections,
#    each request answered by the proxy itself (none reaches Exchange).
python3 - "$proxy_port" 5000 <<'PY' >"$TMP/flood.out" || eg_fail "flood: $(cat "$TMP/flood.out")"
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = bytes.fromhex("03016a0000075652033000 0101".replace(" ", ""))
hdr = {"MS-ASProtocolVersion": "14.1", "Content-Type": "application/vnd.ms-sync.wbxml",
       "User-Agent": "Flood/1"}
conn, forwarded, statuses = None, 0, {}
for i in range(n):
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    path = ("/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=mallory%%40example.com"
            "&DeviceId=FAKE%05d&DeviceType=iPhone" % i)
    try:
        conn.request("POST", path, body, hdr)
        r = conn.getresponse()
        r.read()
    except (http.client.HTTPException, OSError):
        conn.close(); conn = None  # the proxy may close a connection: open another, retry once
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", path, body, hdr)
        r = conn.getresponse()
        r.read()
    statuses[r.status] = statuses.get(r.status, 0) + 1
    forwarded += r.getheader("X-Exsim-Cmd") is not None
    if r.getheader("Connection", "").lower() == "close":
        conn.close(); conn = None
print("statuses", statuses, "forwarded", forwarded)
sys.exit(1 if forwarded else 0)
PY
echo "  $(cat "$TMP/flood.out")"
# The stream is read in order: once the last one is pending, all were read.
within 60000 pending FAKE04999 || eg_fail "the flood's last device never became pending"
n=$(db "SELECT COUNT(*) FROM pending_devices")
[ "$n" = 100 ] || eg_fail "pending devices: $n, want the cap 100"
[ "$(db "SELECT COUNT(*) FROM devices")" = 0 ] || eg_fail "the flood created registry rows"
[ "$(devkeys)" = 0 ] || eg_fail "the flood created Redis keys: $(devkeys)"
pending FAKE00000 && eg_fail "the oldest pending device was kept over the newest"
pending FAKE04900 || eg_fail "a device among the newest 100 is not pending"
grep -q "Sanitizer" "$TMP/core.log" && eg_fail "sanitizer report from the core"
eg_pass "5,000 made-up DeviceIds: 0 registry rows, 0 Redis keys, $n pending (the cap)"

# 2. Exchange answers 2xx: registered, with auth, user bound, hash written.
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
out=$("$BUILD/easclient" --url "http://127.0.0.1:$p2" --user alice@example.com --device REAL0001 \
  --show-headers FolderSync "$TMP/fs.xml") || true
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "the allowed device did not reach Exchange: $out"
registered() { "$EG" core device show REAL0001 "${C[@]}" 2>/dev/null | eg_has "user: *alice@example.com"; }
within 15000 registered || eg_fail "the device Exchange accepted was not registered with its user"
within 3000 eval '[ "$(R HGET easgate:dev:REAL0001 user)" = alice@example.com ]' ||
  eg_fail "the registered device has no Redis hash"
R XRANGE easgate:sightings - + | tr '\n' ' ' | eg_has "device REAL0001 .*auth exchange" ||
  eg_fail "the sighting of the accepted request did not carry auth: exchange"
pending REAL0001 && eg_fail "an accepted device is pending"
eg_pass "a request Exchange answered 2xx registers the device (auth: exchange, user bound, hash written)"

# 3. An admin approves a pending device: registry row, Redis hash, not
#    pending any more; the claimed user (mallory) is not bound.
[ "$(R EXISTS easgate:dev:FAKE04999)" = 0 ] || eg_fail "a pending device has a Redis key"
"$EG" core pending "${C[@]}" | eg_has "^FAKE04999 *mallory@example.com *iPhone" ||
  eg_fail "core pending does not list the device: $("$EG" core pending "${C[@]}" | head -3)"
"$EG" core pending approve fake04999 --user bob@example.com "${C[@]}" >"$TMP/approve.out" 2>&1 ||
  eg_fail "approve failed: $(cat "$TMP/approve.out")"
grep -q "^FAKE04999: approved, registered: block (unmanaged), user bob@example.com" "$TMP/approve.out" ||
  eg_fail "approve said: $(cat "$TMP/approve.out")"
[ "$(R HGET easgate:dev:FAKE04999 state)" = block ] || eg_fail "the approved device has no Redis hash"
[ "$(R HGET easgate:dev:FAKE04999 user)" = bob@example.com ] || eg_fail "the approved device's user is not bob"
pending FAKE04999 && eg_fail "an approved device is still pending"
[ "$(db "SELECT COUNT(*) FROM pending_devices")" = 99 ] || eg_fail "pending is not 99 after one approval"
"$EG" core pending approve FAKE04999 "${C[@]}" 2>/dev/null && eg_fail "a second approval succeeded"
"$EG" core audit "${C[@]}" | eg_has "device.approve .*FAKE04999" || eg_fail "the approval is not audited"
kill -0 "$core_pid" || eg_fail "the core died"
eg_pass "an approved pending device becomes a registry row and a Redis hash"
