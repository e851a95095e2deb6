#!/usr/bin/env bash
# The admin console (issue 18, docs/console.md) in a real browser: Debian's
# chromium, headless, driven by playwright-core (tests/browser/), against
# redis-server, exsim, `easgate proxy` and `easgate core` with its admin
# API on TLS. The browser part (tests/browser/test_console.mjs) signs in,
# fails a wrong password, lists, filters and pages devices, blocks a device
# and sees the proxy refuse it within 1 s, approves a quarantined one,
# checks that a viewer sees no actions and the API refuses it anyway, that
# a change without the CSRF token is refused, that markup in every field is
# shown as text, and signs out. CSP violations, console errors and failed
# requests fail it (tests/browser/harness.mjs), and so does a serious or
# critical accessibility violation (axe-core) on any console page (in
# English and, for one, in Japanese) or the enrollment portal's pages. Skipped (77) without
# chromium or tests/browser/node_modules (scripts/bootstrap installs both).
# EG_SCREENSHOTS=DIR writes the documentation's screenshots there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl node; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "${EG_CHROMIUM:-/usr/bin/chromium}" ] || { echo "SKIP: no chromium (scripts/bootstrap installs it)"; exit 77; }
[ -d "$SRC/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: no tests/browser/node_modules (scripts/bootstrap runs npm ci there)"; exit 77; }
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

CERTS=$(eg_certs)
printf 'unknown_devices: allow\n' >"$TMP/policy.yaml"
cport=$(eg_port)
eport=$(eg_port)
eg_redis
eg_exsim
eg_conf - <<CONF
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
enroll:
  public_host: mail.example.com
  url: https://127.0.0.1:$eport
  listen: 127.0.0.1:$eport
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
CONF
C=(-c "$TMP/easgate.yaml")
EG=$BUILD/easgate
# The enrollment portal's pages get the accessibility audit too.
"$EG" core init-ca "${C[@]}" >"$TMP/init-ca.log" 2>&1 || eg_fail "init-ca failed: $(cat "$TMP/init-ca.log")"
EKEY=$("$EG" core enroll invite alice@example.com --user alice "${C[@]}" --json 2>>"$TMP/inv.log" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])') || eg_fail "invite failed: $(cat "$TMP/inv.log")"
ADMIN_PW='correct horse battery'
VIEWER_PW='staple paper clip 42'
echo "$ADMIN_PW" | "$EG" core init-admin "${C[@]}" --user root >/dev/null || eg_fail "init-admin failed"
TOKEN=$("$EG" core token "${C[@]}" --user root --role admin 2>/dev/null)
eg_stack -n core core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
eg_stack proxy "$TMP/easgate.yaml"
connected() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" | awk '/^easgate_redis_connected /{print $2}'; }
for _ in $(seq 50); do [ "$(connected)" = 2 ] && break; sleep 0.1; done
[ "$(connected)" = 2 ] || { echo "SKIP: proxy state store not wired"; exit 77; }

URL="https://127.0.0.1:$cport"
api() { curl -sk --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X POST "$URL/api/v1/admins" -d "{\"name\":\"vera\",\"role\":\"viewer\",\"password\":\"$VIEWER_PW\"}" |
  eg_has '"vera"' || eg_fail "creating the viewer failed"

# The devices: a phone that syncs through the proxy (the one the browser
# blocks), imported ones in each state, enough for two pages, and markup
# in every field the console shows.
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
"$BUILD/easclient" --url "http://127.0.0.1:$proxy_port" --user alice --device BROW1 --type iPhone \
  --show-headers FolderSync "$TMP/fs.xml" 2>&1 | grep -qi '^X-Exsim-Cmd: FolderSync' ||
  eg_fail "BROW1 does not reach Exchange through the proxy"
python3 - "$TMP/import.json" <<'PY'
import json, sys
x = '<script>alert(1)</script><img src=x onerror=alert(2)>'
devs = [{"device_id": "BROWBLK%d" % i, "user": "bob", "type": "Android", "os": "Android",
         "state": "block", "managed": True} for i in range(3)]
devs += [{"device_id": "BROWQ1", "user": "carol", "type": "iPad", "os": "iOS", "state": "quarantine"}]
devs += [{"device_id": "BROWX1", "user": "mallory" + x, "type": "T" + x[:30], "model": x, "os": x[:60],
          "os_version": "16.1", "note": x}]
devs += [{"device_id": "BROWP%03d" % i, "user": "user%d" % (i % 7), "type": "iPhone", "os": "iOS"}
         for i in range(60)]
json.dump({"devices": devs, "create_users": True}, open(sys.argv[1], "w"))
PY
api -X POST "$URL/api/v1/devices/import" --data-binary @"$TMP/import.json" >"$TMP/import.out"
grep -q '"stored":true' "$TMP/import.out" || eg_fail "import: $(head -c 600 "$TMP/import.out")"
for _ in $(seq 50); do api "$URL/api/v1/devices/BROW1" | grep -q '"device_id"' && break; sleep 0.1; done
api "$URL/api/v1/devices/BROW1" | grep -q '"device_id"' || eg_fail "the core has no BROW1"

# The proxy's presence (docs/state-contract.md): one key per worker, JSON,
# with a TTL of three 5 s beats.
# A portal certificate of BROWP001 (user1), bound: the device page lists it
# and the browser revokes it.
command -v sqlite3 >/dev/null && command -v openssl >/dev/null || { echo "SKIP: no sqlite3/openssl"; exit 77; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/O=easgate test/CN=user1" \
  -keyout "$TMP/browcert.key" -out "$TMP/browcert.pem" 2>/dev/null || eg_fail "openssl req failed"
now=$(($(date +%s) * 1000))
sqlite3 -cmd ".timeout 5000" "$TMP/registry.db" "INSERT INTO enroll_certs(serial, device_id, user,
  not_before_ms, not_after_ms, issued_ms, pem, enrollment, bound_ms) VALUES('0BADC0DE01', 'BROWP001',
  'user1', $now, $((now + 30 * 86400000)), $now, readfile('$TMP/browcert.pem'), 'ENRBROWP001', $now)" ||
  eg_fail "storing the certificate of BROWP001 failed"

R() { redis-cli -p "$redis_port" "$@"; }
for _ in $(seq 100); do [ "$(R --scan --pattern 'easgate:proxy:*' | wc -l)" = 2 ] && break; sleep 0.1; done
keys=$(R --scan --pattern 'easgate:proxy:*')
[ "$(wc -l <<<"$keys")" = 2 ] || eg_fail "presence keys of a 2-worker proxy: $keys"
k=$(head -1 <<<"$keys")
ttl=$(R PTTL "$k")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 15000 ] || eg_fail "presence key $k has PTTL $ttl"
R GET "$k" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["health"]=="ready" and j["worker"] in (0,1) and isinstance(j["held_pings"],int) and j["version"] and j["beat"]>0, j' ||
  eg_fail "presence value: $(R GET "$k")"
[ "$(R ZRANGE easgate:proxies 0 -1 | sort)" = "$(sort <<<"$keys")" ] ||
  eg_fail "easgate:proxies: $(R ZRANGE easgate:proxies 0 -1 WITHSCORES)"
eg_pass "each proxy worker announces itself in easgate:proxy:* (JSON, TTL 15 s), indexed by easgate:proxies"

# A first look without a browser: the console's headers.
curl -skD "$TMP/ui.head" -o /dev/null "$URL/ui/"
for hd in "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'" \
  'X-Frame-Options: DENY' 'X-Content-Type-Options: nosniff' 'Referrer-Policy: no-referrer'; do
  grep -qi "^$hd" "$TMP/ui.head" || eg_fail "GET /ui/ lacks '$hd': $(cat "$TMP/ui.head")"
done
eg_pass "the console's page comes with a strict CSP, X-Frame-Options DENY, nosniff, no referrer"

rc=0
EG_URL=$URL EG_ADMIN=root EG_ADMIN_PW=$ADMIN_PW EG_VIEWER=vera EG_VIEWER_PW=$VIEWER_PW \
  EG_EASCLIENT="$BUILD/easclient" EG_PROXY="http://127.0.0.1:$proxy_port" EG_FSXML="$TMP/fs.xml" \
  EG_ENROLL="https://127.0.0.1:$eport" EG_ENROLL_KEY="$EKEY" \
  node "$SRC/tests/browser/test_console.mjs" || rc=$?
[ "$rc" != 77 ] || exit 77
[ "$rc" = 0 ] || eg_fail "the browser test failed"
eg_stop_clean core
eg_pass "the admin console works in chromium"
