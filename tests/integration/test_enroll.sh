#!/usr/bin/env bash
# Enrollment end to end through the command line: init-ca, invite, a CSR made
# with the openssl command line, enroll, the certificate's CN/SAN, a used
# single-use key refused, a DeviceId of another user refused, the signed
# .mobileconfig (plist + CMS signature), a server-made key (PKCS#12), revoke
# and the CRL.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v openssl >/dev/null || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
cat >easgate.yaml <<YAML
core:
  database: reg.db
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  validity: 30d
  renew_before: 7d
  signing: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML

"$EG" check -c easgate.yaml -q >check.log 2>&1 || eg_fail "easgate check refused the enroll: section: $(cat check.log)"

"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
[ "$(stat -c %a device-ca.key)" = 600 ] || eg_fail "CA key mode is $(stat -c %a device-ca.key), want 600"
grep -q "PRIVATE KEY" init.log && eg_fail "init-ca printed key material"
if "$EG" core init-ca -c easgate.yaml >init2.log 2>&1; then eg_fail "init-ca replaced an existing CA"; fi
grep -q "refusing to replace" init2.log || eg_fail "no clear message for an existing CA: $(cat init2.log)"
openssl x509 -in device-ca.crt -noout -text | eg_has "CA:TRUE" || eg_fail "CA certificate is not a CA"
eg_pass "init-ca: EC CA, key 0600, no overwrite"

key_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
KEY=$("$EG" core enroll invite alice@example.com -c easgate.yaml --user alice --json --qr inv.png 2>inv.log | key_of) ||
  eg_fail "invite failed: $(cat inv.log)"
J=$("$EG" core enroll invite dan@example.com -c easgate.yaml --user 'CORP\dan"q' --json 2>/dev/null)
python3 -c 'import json,sys; assert json.loads(sys.argv[1])["user"] == "CORP\\dan\"q"' "$J" ||
  eg_fail "invite --json is not JSON for a user with a backslash and a quote: $J"
[ "$(head -c 8 inv.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || eg_fail "QR is not a PNG"
sqlite3 reg.db "SELECT count(*) FROM enroll_invitations WHERE hex(key_hash) LIKE '%$(echo "$KEY" | tr -d - | xxd -p | tr -d '\n' | tr a-f A-F)%'" 2>/dev/null | eg_has -x 0 ||
  eg_fail "the key is stored in clear"

openssl req -new -newkey rsa:2048 -nodes -keyout dev.key -subj /CN=whatever -out dev.csr 2>/dev/null
"$EG" core enroll device androidc123 -c easgate.yaml --key "$KEY" --csr dev.csr --platform ios \
  --out dev >enroll.log 2>&1 || eg_fail "enroll failed: $(cat enroll.log)"
openssl x509 -in dev.crt -noout -subject | eg_has "CN = alice" || eg_fail "CN is not the user: $(openssl x509 -in dev.crt -noout -subject)"
openssl x509 -in dev.crt -noout -ext subjectAltName | eg_has "URI:urn:easgate:device:ANDROIDC123, email:alice@example.com" ||
  eg_fail "SAN wrong: $(openssl x509 -in dev.crt -noout -ext subjectAltName)"
openssl x509 -in dev.crt -noout -ext extendedKeyUsage | eg_has "Client Authentication" || eg_fail "no clientAuth"
openssl verify -CAfile device-ca.crt dev.crt >/dev/null || eg_fail "device cert does not chain to the device CA"
"$EG" core device show ANDROIDC123 -c easgate.yaml | eg_has "managed: *yes" || eg_fail "device not managed after enrollment"
eg_pass "enroll with an openssl CSR: CN=user, SAN URI+email, clientAuth, device managed"

openssl cms -verify -inform DER -in dev.mobileconfig -CAfile "$CERTS/ca.crt" -purpose any -out dev.plist >cms.log 2>&1 ||
  eg_fail "profile signature does not verify: $(cat cms.log)"
python3 - dev.plist <<'PY' || eg_fail ".mobileconfig is not the expected plist"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
types = [x["PayloadType"] for x in p["PayloadContent"]]
assert p["PayloadType"] == "Configuration", p
assert "com.apple.eas.account" in types, types
eas = [x for x in p["PayloadContent"] if x["PayloadType"] == "com.apple.eas.account"][0]
assert eas["Host"] == "mail.example.com" and eas["UserName"] == "alice" and eas["SSL"] is True, eas
assert eas["EmailAddress"] == "alice@example.com"
PY
eg_pass ".mobileconfig parses as a plist and its CMS signature verifies"

if "$EG" core enroll device OTHER1 -c easgate.yaml --key "$KEY" --csr dev.csr >used.log 2>&1; then
  eg_fail "a used single-use key was accepted"
fi
grep -q "used already" used.log || eg_fail "no clear message for a used key: $(cat used.log)"
BAD="${KEY:0:5}0${KEY:6}"
"$EG" core enroll device OTHER1 -c easgate.yaml --key "$BAD" --csr dev.csr >bad.log 2>&1 && eg_fail "a key with 0 was accepted"
grep -q "character '0' at position 6" bad.log || eg_fail "no position in the bad-key message: $(cat bad.log)"
eg_pass "used single-use key and invalid characters refused with clear messages"

KEY2=$("$EG" core enroll invite bob@example.com -c easgate.yaml --max-uses 3 --json 2>/dev/null | key_of)
"$EG" core enroll device ANDROIDC123 -c easgate.yaml --key "$KEY2" --genkey >conf.log 2>&1 && eg_fail "DeviceId of alice enrolled for bob"
grep -q "cannot be enrolled with this key; the attempt used the key once" conf.log ||
  eg_fail "no conflict message: $(cat conf.log)"
grep -q alice conf.log && eg_fail "the conflict names the owner: $(cat conf.log)"
openssl req -new -newkey rsa:1024 -nodes -keyout weak.key -subj /CN=w -out weak.csr 2>/dev/null
"$EG" core enroll device BOBPHONE -c easgate.yaml --key "$KEY2" --csr weak.csr >weak.log 2>&1 && eg_fail "RSA 1024 CSR accepted"
grep -q "too weak" weak.log || eg_fail "no weak-key message: $(cat weak.log)"
[ "$(sqlite3 reg.db "SELECT uses FROM enroll_invitations WHERE email='bob@example.com'" 2>/dev/null || echo 0)" = 1 ] ||
  eg_fail "the conflict did not use the key, or the weak CSR did"
"$EG" core enroll device BOBPHONE -c easgate.yaml --key "$KEY2" --genkey --platform android --out bob >bob.log 2>&1 ||
  eg_fail "server-generated enrollment failed: $(cat bob.log)"
PW=$(sed -n 's/^p12 password: \([^ ]*\).*/\1/p' bob.log)
openssl pkcs12 -in bob.p12 -nodes -passin "pass:$PW" 2>/dev/null | eg_has "BEGIN PRIVATE KEY" || eg_fail "PKCS#12 does not open with its one-time password"
python3 -c 'import json,sys; d=json.load(open("bob.json")); assert d["host"]=="mail.example.com" and d["client_certificate"]["format"]=="pkcs12"' ||
  eg_fail "Android JSON wrong"
eg_pass "conflict (the key used once, no owner named) and weak key (nothing written) refused; server-made key as PKCS#12 + Android JSON"

SERIAL=$(openssl x509 -in dev.crt -noout -serial | cut -d= -f2)
"$EG" core enroll revoke "$SERIAL" -c easgate.yaml --reason lost >rev.log 2>&1 || eg_fail "revoke failed: $(cat rev.log)"
openssl crl -inform DER -in device-ca.crl -noout -text | eg_has "$SERIAL" || eg_fail "revoked serial not in the CRL"
openssl crl -inform DER -in device-ca.crl -out crl.pem
cat device-ca.crt crl.pem >chain.pem
if openssl verify -crl_check -CAfile chain.pem dev.crt >/dev/null 2>&1; then eg_fail "revoked cert still verifies with the CRL"; fi
openssl verify -crl_check -CAfile chain.pem bob.crt >/dev/null 2>&1 || eg_fail "unrevoked cert fails with the CRL"
eg_pass "revoke: serial in the signed CRL, openssl verify -crl_check refuses it"

# ---- the HTTPS endpoint (easgate core with enroll.listen) ----
command -v curl >/dev/null || exit 0
PORT=$(eg_port)
cat >>easgate.yaml <<YAML
  listen: 127.0.0.1:$PORT
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
eg_stack core easgate.yaml
URL="https://127.0.0.1:$PORT/enroll/v1"
KEY3=$("$EG" core enroll invite carol@example.com -c easgate.yaml --json 2>/dev/null | key_of)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout c.key -subj /CN=c -out c.csr 2>/dev/null
python3 - "$KEY3" c.csr >req.json <<'PY'
import json, sys
print(json.dumps({"key": sys.argv[1], "device_id": "CAROLPHONE1", "csr": open(sys.argv[2]).read(),
                  "platform": "ios"}))
PY
code=$(curl -s --cacert "$CERTS/ca.crt" -o resp.json -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @req.json "$URL/enroll")
[ "$code" = 200 ] || eg_fail "HTTPS enrollment answered $code: $(cat resp.json)"
python3 -c 'import json; d=json.load(open("resp.json")); open("c.crt","w").write(d["certificate"]); assert d["user"]=="carol@example.com" and d["profile_type"]=="application/x-apple-aspen-config"' ||
  eg_fail "HTTPS enrollment answer wrong: $(cat resp.json)"
openssl x509 -in c.crt -noout -ext subjectAltName | eg_has "urn:easgate:device:CAROLPHONE1" || eg_fail "HTTPS cert SAN wrong"
code=$(curl -s --cacert "$CERTS/ca.crt" -o resp2.json -w '%{http_code}' --data-binary @req.json "$URL/enroll")
[ "$code" = 403 ] || eg_fail "used key over HTTPS answered $code, want 403"
grep -q "used already" resp2.json || eg_fail "no clear JSON message: $(cat resp2.json)"
code=$(curl -s --cacert "$CERTS/ca.crt" -o resp3.json -w '%{http_code}' --data-binary '{"key":1' "$URL/enroll")
[ "$code" = 400 ] || eg_fail "malformed JSON answered $code, want 400"
curl -s --cacert "$CERTS/ca.crt" -o got.crl "$URL/crl" && openssl crl -inform DER -in got.crl -noout 2>/dev/null ||
  eg_fail "CRL not served at /enroll/v1/crl"
eg_pass "HTTPS endpoint: enroll 200 with cert + profile, used key 403, bad JSON 400, CRL served"
