#!/usr/bin/env bash
# Invitations over the enrollment server's admin routes: `easgate admin
# invite` with an admin token gives a key (shown once), URL and QR code; a
# device enrolls with that key over HTTPS (openssl CSR); the invitation is
# listed and withdrawn (its key stops working); a viewer token cannot invite
# (403) but may list; strict JSON (unknown field, wrong type) is a 400 with
# nothing written; every call is in the audit log with its address.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v openssl >/dev/null || exit 77
command -v curl >/dev/null || exit 77
command -v python3 >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
PORT=$(eg_port)
cat >easgate.yaml <<YAML
core:
  database: reg.db
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  validity: 30d
  renew_before: 7d
  listen: 127.0.0.1:$PORT
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
echo 'correct horse battery' | "$EG" core init-admin -c easgate.yaml --user root >/dev/null 2>&1 ||
  eg_fail "init-admin failed"
echo 'viewing is fun 42' | "$EG" core init-admin -c easgate.yaml --user vera --role viewer >/dev/null 2>&1 ||
  eg_fail "init-admin (viewer) failed"
ADMIN=$("$EG" core token -c easgate.yaml --user root --role admin 2>/dev/null) || eg_fail "no admin token"
VIEWER=$("$EG" core token -c easgate.yaml --user vera --role viewer 2>/dev/null) || eg_fail "no viewer token"
DEVTOK=$("$EG" core token -c easgate.yaml --user root --role device 2>/dev/null) || eg_fail "no device token"

eg_stack core easgate.yaml
URL="https://127.0.0.1:$PORT/enroll/v1"
A=(--enroll-url "https://127.0.0.1:$PORT" --cacert "$CERTS/ca.crt")
ninv() { sqlite3 reg.db "SELECT count(*) FROM enroll_invitations"; }

# ---- missing --enroll-url is a clear usage error ----
env -u EASGATE_ENROLL_URL "$EG" admin --token "$ADMIN" invitations >nourl.log 2>&1 && eg_fail "no --enroll-url accepted"
grep -q "enroll-url" nourl.log || eg_fail "no clear message without --enroll-url: $(cat nourl.log)"

# ---- invite (readable output) ----
"$EG" admin "${A[@]}" --token "$ADMIN" invite alice@example.com --user alice --max-uses 2 \
  --expires 30d --qr inv.png >inv.out 2>inv.err || eg_fail "admin invite failed: $(cat inv.out inv.err)"
KEY=$(sed -n 's/^key: *//p' inv.out)
[ -n "$KEY" ] || eg_fail "no key in the output: $(cat inv.out)"
grep -q "shown only this once" inv.err || eg_fail "no warning that the key is shown once: $(cat inv.err)"
grep -q "^url: *https://enroll.example.com/enroll?key=$KEY" inv.out || eg_fail "no invitation URL: $(cat inv.out)"
grep -q "^max uses: *2" inv.out || eg_fail "max uses not 2: $(cat inv.out)"
[ "$(head -c 8 inv.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || eg_fail "--qr is not a PNG"
[ "$(stat -c %a inv.png)" = 600 ] || eg_fail "QR file mode $(stat -c %a inv.png), want 600 (it holds the key)"
[ "$(sqlite3 reg.db "SELECT user||' '||max_uses||' '||created_by FROM enroll_invitations")" = "alice 2 root" ] ||
  eg_fail "stored invitation wrong: $(sqlite3 reg.db 'SELECT * FROM enroll_invitations')"
sqlite3 reg.db "SELECT actor||'|'||address||'|'||action FROM audit" | eg_has -x "root|127.0.0.1|enroll.invite" ||
  eg_fail "invite not audited with actor and address: $(sqlite3 reg.db 'SELECT * FROM audit')"
eg_pass "admin invite: key shown once with a warning, URL, QR PNG (0600), stored, audited"

# ---- --json: the raw answer, QR as base64 PNG ----
"$EG" admin "${A[@]}" --token "$ADMIN" --json invite bob@example.com --expires never >bob.json 2>/dev/null ||
  eg_fail "admin invite --json failed"
python3 - bob.json <<'PY' || eg_fail "--json answer wrong: $(cat bob.json)"
import json, sys, base64
d = json.load(open(sys.argv[1]))
assert set(d) >= {"id", "email", "user", "key", "max_uses", "expires", "url", "qr_png"}, d
assert d["email"] == "bob@example.com" and d["user"] == "bob@example.com" and d["expires"] == "never", d
assert d["max_uses"] == 1 and base64.b64decode(d["qr_png"])[:8] == b"\x89PNG\r\n\x1a\n"
PY
BOBID=$(python3 -c 'import json,sys; print(json.load(open("bob.json"))["id"])')
eg_pass "admin invite --json: id, key, url, never-expiring, QR as base64 PNG"

# ---- enroll a device with the key: HTTPS, openssl CSR ----
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout a.key -subj /CN=x -out a.csr 2>/dev/null
python3 - "$KEY" a.csr >req.json <<'PY'
import json, sys
print(json.dumps({"key": sys.argv[1], "device_id": "ALICEPHONE1", "csr": open(sys.argv[2]).read(), "platform": "android"}))
PY
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o resp.json -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @req.json "$URL/enroll")
[ "$code" = 200 ] || eg_fail "enrollment with the invited key answered $code: $(cat resp.json)"
python3 -c 'import json; d=json.load(open("resp.json")); open("a.crt","w").write(d["certificate"]); assert d["user"]=="alice", d' ||
  eg_fail "enrollment answer wrong: $(cat resp.json)"
openssl x509 -in a.crt -noout -subject | eg_has "CN = alice" || eg_fail "certificate CN is not alice"
eg_pass "device enrolled over HTTPS with the key from admin invite (CN=alice)"

# ---- list ----
"$EG" admin "${A[@]}" --token "$ADMIN" invitations >list.out 2>&1 || eg_fail "admin invitations failed: $(cat list.out)"
grep -E "^1 +alice@example.com +alice +1/2 .* open$" list.out >/dev/null || eg_fail "alice's row wrong: $(cat list.out)"
grep -q "bob@example.com" list.out || eg_fail "bob missing from the list: $(cat list.out)"
grep -q "$KEY" list.out && eg_fail "the list shows a key"
"$EG" admin "${A[@]}" --token "$VIEWER" --json invitations --email bob@example.com >vlist.json 2>&1 ||
  eg_fail "a viewer cannot list: $(cat vlist.json)"
python3 -c 'import json; d=json.load(open("vlist.json"))["invitations"]; assert [x["email"] for x in d]==["bob@example.com"], d; assert "key" not in d[0]' ||
  eg_fail "--email filter wrong: $(cat vlist.json)"
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o q.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$URL/invitations?mail=x")
[ "$code" = 400 ] || eg_fail "unknown query parameter answered $code, want 400"
eg_pass "invitations: table with uses/state, no keys; viewer may list; --email filters; unknown query 400"

# ---- who may do what ----
n0=$(ninv)
"$EG" admin "${A[@]}" --token "$VIEWER" invite eve@example.com >vinv.log 2>&1 && eg_fail "a viewer invited"
grep -q "HTTP 403" vinv.log || eg_fail "viewer invite not 403: $(cat vinv.log)"
"$EG" admin "${A[@]}" --token "$VIEWER" uninvite "$BOBID" >vdel.log 2>&1 && eg_fail "a viewer withdrew an invitation"
grep -q "HTTP 403" vdel.log || eg_fail "viewer uninvite not 403: $(cat vdel.log)"
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o d.json -w '%{http_code}' -H "Authorization: Bearer $DEVTOK" "$URL/invitations")
[ "$code" = 403 ] || eg_fail "a device token listed invitations ($code)"
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o n.json -w '%{http_code}' --data-binary '{"email":"e@example.com"}' "$URL/invitations")
[ "$code" = 401 ] || eg_fail "no token answered $code, want 401"
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o n.json -w '%{http_code}' -H "Authorization: Bearer egt_nonsense" --data-binary '{"email":"e@example.com"}' "$URL/invitations")
[ "$code" = 401 ] || eg_fail "a bad token answered $code, want 401"
[ "$(ninv)" = "$n0" ] || eg_fail "a refused call created an invitation"
eg_pass "viewer invite/uninvite 403, device token 403, no or bad token 401, nothing created"

# ---- strict JSON ----
post() { curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o bad.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' --data-binary "$1" "$URL/invitations"; }
for body in '{"email":"e@example.com","colour":"red"}' '{"email":"e@example.com","max_uses":"3"}' \
  '{"email":42}' '{"user":"e"}' '{"email":"e@example.com"' '[1]' '{"email":"e@example.com","expires":"soon"}' \
  '{"email":"e@example.com","max_uses":0}' '{"email":"e@example.com","expires":30}' '{"email":"not-an-address"}'; do
  code=$(post "$body")
  [ "$code" = 400 ] || eg_fail "body $body answered $code, want 400: $(cat bad.json)"
  python3 -c 'import json; assert json.load(open("bad.json"))["error"]' || eg_fail "no error message for $body"
done
post '{"email":"e@example.com","colour":"red"}' >/dev/null
grep -q "unknown field 'colour'" bad.json || eg_fail "unknown field not named: $(cat bad.json)"
[ "$(ninv)" = "$n0" ] || eg_fail "a bad body created an invitation"
eg_pass "bad JSON (unknown field, wrong types, missing email, malformed, bad expiry/max_uses) 400, nothing written"

# ---- withdraw ----
"$EG" admin "${A[@]}" --token "$ADMIN" uninvite "$BOBID" >del.out 2>&1 || eg_fail "uninvite failed: $(cat del.out)"
grep -q "withdrawn" del.out || eg_fail "uninvite output: $(cat del.out)"
"$EG" admin "${A[@]}" --token "$ADMIN" uninvite "$BOBID" >del2.out 2>&1 && eg_fail "withdrawing twice succeeded"
grep -q "HTTP 404" del2.out || eg_fail "second uninvite not 404: $(cat del2.out)"
"$EG" admin "${A[@]}" --token "$ADMIN" uninvite 12abc >del3.out 2>&1 && eg_fail "uninvite took a bad id"
BOBKEY=$(python3 -c 'import json; print(json.load(open("bob.json"))["key"])')
python3 - "$BOBKEY" a.csr >req2.json <<'PY'
import json, sys
print(json.dumps({"key": sys.argv[1], "device_id": "BOBPHONE1", "csr": open(sys.argv[2]).read()}))
PY
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o r2.json -w '%{http_code}' --data-binary @req2.json "$URL/enroll")
[ "$code" = 403 ] || eg_fail "a withdrawn key enrolled ($code): $(cat r2.json)"
"$EG" admin "${A[@]}" --token "$ADMIN" invitations --email bob@example.com | eg_has "withdrawn" ||
  eg_fail "the list does not show bob's invitation withdrawn"
sqlite3 reg.db "SELECT actor||'|'||address||'|'||action||'|'||target FROM audit" | eg_has -x "root|127.0.0.1|enroll.uninvite|$BOBID" ||
  eg_fail "uninvite not audited with its address"
sqlite3 reg.db "SELECT actor||'|'||address||'|'||action FROM audit" | eg_has -x "vera|127.0.0.1|enroll.invite_list" ||
  eg_fail "the viewer's listing not audited"
eg_pass "uninvite: withdrawn, its key refused (403), twice 404, audited with the address"

# ---- the core stops cleanly, and (ASan builds) without a sanitizer report ----
kill -TERM "${EG_PIDS[0]}"
for _ in $(seq 100); do kill -0 "${EG_PIDS[0]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${EG_PIDS[0]}" 2>/dev/null && eg_fail "easgate core did not stop on TERM within 10 s"
grep -E "Sanitizer|runtime error" "$TMP/core.log" && eg_fail "sanitizer report in the core's log"
eg_pass "core stopped on TERM, no sanitizer report"
