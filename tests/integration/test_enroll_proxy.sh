#!/usr/bin/env bash
# Enrollment certificates at the proxy, over real TLS against exsim: a
# device enrolled with an openssl CSR syncs through an instance with
# client_auth required (ca = the device CA, crl = enroll's CRL); the same
# certificate with another DeviceId or another user is blocked with reason
# cert-mismatch; a certificate without the device URI is blocked too; an
# expired certificate and no certificate fail the handshake; after
# `easgate core enroll revoke` the CRL is reloaded and the handshake fails
# (also for a resumed TLS session); a broken CRL at start is exit 2 with a
# message, a broken CRL on reload is logged and the old one stays.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v openssl >/dev/null || exit 77
command -v curl >/dev/null || exit 77
command -v python3 >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1

exsim_port=$(eg_port); PX=$(eg_port); OPT=$(eg_port)
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
"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
KEY=$("$EG" core enroll invite alice@example.com -c easgate.yaml --user alice --json 2>inv.log |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])') || eg_fail "invite failed: $(cat inv.log)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=x -out dev.csr 2>/dev/null
"$EG" core enroll device androidc123 -c easgate.yaml --key "$KEY" --csr dev.csr --out dev >enroll.log 2>&1 ||
  eg_fail "enroll failed: $(cat enroll.log)"
[ -s device-ca.crl ] || "$EG" core enroll crl -c easgate.yaml >crl.log 2>&1 || eg_fail "no CRL: $(cat crl.log)"
[ -s device-ca.crl ] || eg_fail "enroll wrote no device-ca.crl"

# Certificates made here with the device CA key: one without the device
# URI, one expired (notAfter yesterday).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout o.key -subj /CN=alice -out o.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nsubjectAltName=email:alice@example.com\n' >nouri.ext
openssl x509 -req -in o.csr -CA device-ca.crt -CAkey device-ca.key -CAcreateserial -days 5 \
  -extfile nouri.ext -out nouri.crt 2>/dev/null || eg_fail "cannot make the no-URI certificate"
printf 'extendedKeyUsage=clientAuth\nsubjectAltName=URI:urn:easgate:device:ANDROIDC123\n' >exp.ext
openssl x509 -req -in o.csr -CA device-ca.crt -CAkey device-ca.key -CAcreateserial -days -1 \
  -extfile exp.ext -out exp.crt 2>/dev/null || eg_fail "cannot make the expired certificate"

cat >proxy.yaml <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: mtls
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $TMP/device-ca.crt, crl: $TMP/device-ca.crl, required: true }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
    - name: opt
      listen: 127.0.0.1:$OPT
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $TMP/device-ca.crt, crl: $TMP/device-ca.crl }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
log: { access: "$TMP/access.log", level: info }
YAML

# A broken CRL at start: a clear message naming the file, exit 2.
sed "s|$TMP/device-ca.crl|$TMP/broken.crl|" proxy.yaml >broken.yaml
echo "not a crl" >broken.crl
"$EG" proxy -c broken.yaml >broken.log 2>&1
rc=$?
[ "$rc" = 2 ] || eg_fail "broken CRL at start: exit $rc, want 2: $(cat broken.log)"
grep -q "broken.crl: not a CRL" broken.log || eg_fail "no clear message for a broken CRL: $(cat broken.log)"
"$EG" check -c broken.yaml -q >/dev/null 2>&1 # only the syntax: must not crash
sed "s|$TMP/device-ca.crl|$CERTS/ca.crt|" proxy.yaml >wrongca.yaml
"$EG" proxy -c wrongca.yaml >wrongca.log 2>&1
rc=$?
[ "$rc" = 2 ] || eg_fail "a certificate as CRL: exit $rc, want 2: $(cat wrongca.log)"
eg_pass "broken CRL at start: exit 2, '$(head -n 1 broken.log)'"

eg_exsim --tls
eg_stack proxy proxy.yaml

EAS="/Microsoft-Server-ActiveSync"
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >fs.wbxml
# sync PORT QUERY-USER DEVICEID [curl args...]: prints the HTTP code (000 = no TLS)
sync() {
  local port=$1 user=$2 dev=$3
  shift 3
  curl -s --max-time 10 --cacert "$CERTS/ca.crt" -D hdr -o body -w '%{http_code}' "$@" -X POST \
    "https://localhost:$port$EAS?Cmd=FolderSync&User=$user&DeviceId=$dev&DeviceType=Android" \
    -H 'User-Agent: Android-Mail/1' -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @fs.wbxml 2>/dev/null
}
last_reason() { tail -n 1 access.log | python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason"))'; }
ME=(--cert dev.crt --key dev.key)

out=$(sync "$PX" alice androidc123 "${ME[@]}")
[ "$out" = 200 ] || eg_fail "enrolled device: HTTP $out"
grep -qi "^X-Exsim-Cmd: FolderSync" hdr || eg_fail "enrolled device did not reach exsim"
out=$(sync "$PX" 'CORP%5Calice' ANDROIDC123 "${ME[@]}")
[ "$out" = 200 ] && grep -qi "^X-Exsim-Cmd" hdr || eg_fail "CORP\\alice with CN alice: HTTP $out"
eg_pass "enrolled certificate, its DeviceId and user (also CORP\\alice): reaches exsim"

# another DeviceId: FolderSync Status 129 (blocked), not forwarded
out=$(sync "$PX" alice OTHERDEVICE1 "${ME[@]}")
[ "$out" = 200 ] || eg_fail "other DeviceId: HTTP $out"
grep -qi "^X-Exsim" hdr && eg_fail "other DeviceId reached exsim"
[ "$(xxd -p body | tr -d '\n')" = "03016a000007564c0331323900""0101" ] || eg_fail "other DeviceId body: $(xxd -p body)"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "other DeviceId: reason $(last_reason)"
out=$(sync "$PX" bob androidc123 "${ME[@]}")
grep -qi "^X-Exsim" hdr && eg_fail "other user reached exsim"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "other user: reason $(last_reason) (HTTP $out)"
eg_pass "another DeviceId / another user: blocked (Status 129), reason cert-mismatch"

out=$(sync "$PX" alice ANDROIDC123 --cert nouri.crt --key o.key)
grep -qi "^X-Exsim" hdr && eg_fail "certificate without the device URI reached exsim"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "no device URI: reason $(last_reason) (HTTP $out)"
out=$(sync "$OPT" alice OTHERDEVICE1 "${ME[@]}")
grep -qi "^X-Exsim" hdr && eg_fail "optional instance: another DeviceId reached exsim"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "optional instance: reason $(last_reason) (HTTP $out)"
out=$(sync "$OPT" bob SOMEPHONE)
[ "$out" = 200 ] && grep -qi "^X-Exsim-Cmd" hdr || eg_fail "optional instance without a certificate: HTTP $out"
eg_pass "no device URI: cert-mismatch; optional instance: same check with a certificate, none without"

n0=$(wc -l <access.log)
out=$(sync "$PX" alice ANDROIDC123)
[ "$out" = 000 ] || eg_fail "no certificate on a required instance: HTTP $out"
out=$(sync "$PX" alice ANDROIDC123 --cert exp.crt --key o.key)
[ "$out" = 000 ] || eg_fail "expired certificate: HTTP $out"
[ "$(wc -l <access.log)" = "$n0" ] || eg_fail "a refused handshake reached the access log"
grep -q "certificate has expired" proxy.log || eg_fail "no 'expired' in the proxy log"
eg_pass "no certificate and an expired certificate: handshake refused"

# A TLS session to resume after the revocation (TLS 1.2: the session comes
# with the handshake).
echo | timeout 10 openssl s_client -connect "127.0.0.1:$PX" -tls1_2 -CAfile "$CERTS/ca.crt" \
  -cert dev.crt -key dev.key -sess_out sess.pem >sess1.log 2>&1
[ -s sess.pem ] || eg_fail "no TLS session saved: $(tail -5 sess1.log)"

# A broken CRL on reload: logged, the old one stays.
cp device-ca.crl good.crl
echo garbage >tmp.crl && mv tmp.crl device-ca.crl
for _ in $(seq 50); do grep -q "CRL loaded before stays" proxy.log && break; sleep 0.1; done
grep -q "device-ca.crl: not a CRL.*the CRL loaded before stays" proxy.log || eg_fail "broken CRL on reload not logged"
out=$(sync "$PX" alice androidc123 "${ME[@]}")
[ "$out" = 200 ] || eg_fail "after a broken CRL the old one should stay: HTTP $out"
mv device-ca.crl gone.crl
for _ in $(seq 50); do grep -q "device-ca.crl: cannot read the CRL" proxy.log && break; sleep 0.1; done
sleep 1.5
[ "$(grep -c "device-ca.crl: cannot read the CRL" proxy.log)" = 2 ] ||
  eg_fail "a missing CRL should be reported once per instance: $(grep -c "cannot read the CRL" proxy.log)"
out=$(sync "$PX" alice androidc123 "${ME[@]}")
[ "$out" = 200 ] || eg_fail "after the CRL vanished the old one should stay: HTTP $out"
nrel=$(grep -c "reloaded the CRL" proxy.log)
cp good.crl tmp.crl && mv tmp.crl device-ca.crl
for _ in $(seq 50); do [ "$(grep -c "reloaded the CRL" proxy.log)" -gt "$nrel" ] && break; sleep 0.1; done
[ "$(grep -c "reloaded the CRL" proxy.log)" -gt "$nrel" ] || eg_fail "the good CRL was not reloaded within 5 s"
eg_pass "broken or missing CRL on reload: logged once, old CRL kept"

SERIAL=$(openssl x509 -in dev.crt -noout -serial | cut -d= -f2)
nrel=$(grep -c "reloaded the CRL" proxy.log)
"$EG" core enroll revoke "$SERIAL" -c easgate.yaml --reason lost >rev.log 2>&1 || eg_fail "revoke failed: $(cat rev.log)"
for _ in $(seq 50); do [ "$(grep -c "reloaded the CRL" proxy.log)" -gt "$nrel" ] && break; sleep 0.1; done
[ "$(grep -c "reloaded the CRL" proxy.log)" -gt "$nrel" ] || eg_fail "the CRL was not reloaded within 5 s"
out=$(sync "$PX" alice androidc123 "${ME[@]}")
[ "$out" = 000 ] || eg_fail "revoked certificate: HTTP $out"
grep -q "certificate revoked" proxy.log || eg_fail "no 'certificate revoked' in the proxy log"
# The resumed handshake skips certificate checks; the proxy must still drop
# it: no HTTP answer on that connection.
REQ="POST $EAS?Cmd=FolderSync&User=alice&DeviceId=ANDROIDC123&DeviceType=Android HTTP/1.1\r\nHost: localhost\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
printf "$REQ" | timeout 10 openssl s_client -connect "127.0.0.1:$PX" -tls1_2 -CAfile "$CERTS/ca.crt" \
  -cert dev.crt -key dev.key -sess_in sess.pem -ign_eof >sess2.log 2>&1
grep -q "^Reused" sess2.log || eg_fail "the saved TLS session was not offered/resumed: $(grep -E '^(New|Reused)' sess2.log)"
grep -q "^HTTP/1.1" sess2.log && eg_fail "a resumed session of a revoked certificate got an answer"
[ "$(grep -c "certificate revoked" proxy.log)" -ge 2 ] || eg_fail "the resumed session was not refused in the log"
eg_pass "revoked: CRL reloaded, handshake refused (also resumed)"

# `easgate run` with core:, enroll.listen and proxy: runs the enrollment
# endpoint beside the proxy.
kill "$proxy_pid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
EN=$(eg_port)
{
  cat easgate.yaml
  echo "  listen: 127.0.0.1:$EN"
  echo "  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}"
  cat proxy.yaml
} >run.yaml
eg_stack run run.yaml
curl -s --max-time 10 --cacert "$CERTS/ca.crt" -o ca.got "https://127.0.0.1:$EN/enroll/v1/ca" ||
  eg_fail "easgate run: the enrollment endpoint does not answer"
cmp -s ca.got device-ca.crt || eg_fail "easgate run: /enroll/v1/ca is not the device CA"
out=$(sync "$PX" alice androidc123 "${ME[@]}")
[ "$out" = 000 ] || eg_fail "easgate run: revoked certificate: HTTP $out"
kill "$run_pid"
for _ in $(seq 100); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$run_pid" 2>/dev/null && eg_fail "easgate run did not stop on SIGTERM"
eg_pass "easgate run: enrollment endpoint beside the proxy, stops on SIGTERM"
