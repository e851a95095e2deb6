#!/usr/bin/env bash
# Enrollment end to end with a real browser (issue 18): the stack of
# test_enroll_bind.sh (enroll_bind.sh: Redis, exsim on TLS, the core with
# the enrollment portal, a proxy requiring client certificates) plus the
# core's admin API and console on TLS. In chromium
# (tests/browser/test_enroll.mjs) an admin creates invitations in the
# console (a pasted CSV with lines refused by the browser and by the
# server, each named by its line), reads the link and QR code shown once,
# opens the link as the user in a second browser context, enrolls an iPhone
# and an Android phone with the one two-use invitation and downloads the
# profile and the PKCS#12; the list shows used up / withdrawn / expired
# invitations, a viewer sees it without actions. Here, outside the
# browser: the profile is a CMS signature that verifies, its plist carries
# the Exchange account and a PKCS#12 that opens with the password in it;
# the Android PKCS#12 opens with the password the page showed, and through
# the proxy its first FolderSync that Exchange accepts binds the DeviceId,
# a second DeviceId is refused cert-mismatch. Back in the browser the
# device's page shows its enrollment. The key is in no log and no audit
# row. Skipped (77) without chromium or tests/browser/node_modules.
set -u
. "$(dirname "$0")/lib.sh" "$@"
. "$(dirname "$0")/enroll_bind.sh"
command -v node >/dev/null || { echo "SKIP: no node"; exit 77; }
[ -x "${EG_CHROMIUM:-/usr/bin/chromium}" ] || { echo "SKIP: no chromium (scripts/bootstrap installs it)"; exit 77; }
[ -d "$SRC/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: no tests/browser/node_modules (scripts/bootstrap runs npm ci there)"; exit 77; }

CP=$(eg_port)
CERTS=$(eg_certs)
eb_setup "  listen: 127.0.0.1:$CP
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}"
EG=$BUILD/easgate
ADMIN_PW='correct horse battery'
VIEWER_PW='staple paper clip 42'
echo "$ADMIN_PW" | "$EG" core init-admin -c easgate.yaml --user root >/dev/null || eg_fail "init-admin failed"
TOKEN=$("$EG" core token -c easgate.yaml --user root --role admin 2>/dev/null)
eb_start
URL="https://127.0.0.1:$CP"
api() { curl -s --max-time 10 --cacert "$CERTS/ca.crt" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X POST "$URL/api/v1/admins" -d "{\"name\":\"vera\",\"role\":\"viewer\",\"password\":\"$VIEWER_PW\"}" |
  grep -q '"vera"' || eg_fail "creating the viewer failed"

# The browser part runs in the background and waits for the steps here
# (tests/browser/test_enroll.mjs): one browser and one admin session.
eg_start browser env EG_URL="$URL" EG_ADMIN=root EG_ADMIN_PW="$ADMIN_PW" EG_VIEWER=vera \
  EG_VIEWER_PW="$VIEWER_PW" EG_OUT="$TMP" node "$SRC/tests/browser/test_enroll.mjs"
browser_shown=0
browser_show() { # its PASS/FAIL lines not shown yet
  local n
  n=$(wc -l <browser.log)
  sed -n "$((browser_shown + 1)),${n}p" browser.log | grep -E '^(PASS|FAIL|SKIP)'
  browser_shown=$n
}
browser_end() { # its exit status, checked
  local rc=0
  wait "$browser_pid" || rc=$?
  browser_show
  [ "$rc" != 77 ] || exit 77
  [ "$rc" = 0 ] || eg_fail "the browser test failed (status $rc)"
}
browser_wait() { # FILE: until the browser test wrote it
  for _ in $(seq 1200); do
    [ -e "$1" ] && return 0
    kill -0 "$browser_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -e "$1" ] && return 0
  browser_end
  eg_fail "the browser test ended without $1"
}
browser_wait browser.step1
browser_show

# The iPhone's profile: a CMS signature by enroll.signing that verifies,
# over a plist with the Exchange account and the PKCS#12 identity.
[ -s alice.mobileconfig ] && [ -s alice.p12 ] && [ -s alice.pw ] || eg_fail "the browser saved no downloads"
openssl cms -verify -inform DER -in alice.mobileconfig -CAfile "$CERTS/ca.crt" -purpose any -out alice.plist 2>verify.log ||
  eg_fail "the profile's signature does not verify: $(cat verify.log)"
python3 - alice.plist "$PX" <<'PY' || eg_fail "the profile's plist"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
kinds = {c["PayloadType"]: c for c in p["PayloadContent"]}
eas = kinds["com.apple.eas.account"]
assert eas["Host"] == "localhost:" + sys.argv[2] and eas["UserName"] == "alice", eas
assert eas["EmailAddress"] == "alice@example.com" and eas["SSL"] is True, eas
p12 = kinds["com.apple.security.pkcs12"]
assert eas["PayloadCertificateUUID"] == p12["PayloadUUID"], "the account does not use the identity"
open("ios.p12", "wb").write(p12["PayloadContent"])
open("ios.pw", "w").write(p12["Password"])
PY
eb_pem ios ios.p12 "$(cat ios.pw)"
[ -n "$(eb_enrollment ios)" ] || eg_fail "the profile's certificate names no enrollment"
eg_pass "the iOS profile: CMS signature verifies, the plist has the EAS account and a PKCS#12 opening with its password"

# The Android phone: the PKCS#12 with the password the page showed, then
# binding on first use through the proxy.
eb_pem alice alice.p12 "$(cat alice.pw)"
E1=$(eb_enrollment alice)
[ -n "$E1" ] || eg_fail "no enrollment id in the Android certificate"
eb_first_sync alice PHONE1
[ "$out" = 200 ] && [ $fwd = 1 ] || eg_fail "first use of the certificate: HTTP $out, forwarded $fwd ($(eb_last_reason))"
eb_wait_bound "$E1" PHONE1
[ "$(eb_bound_to "$E1")" = PHONE1 ] || eg_fail "the first 2xx did not bind PHONE1: '$(eb_bound_to "$E1")'"
# Under load the proxy's look-up of the binding may miss its deadline: it
# then fails closed (cert-binding-unavailable), and the phone tries again.
for _ in 1 2 3; do
  eb_sync alice PHONE2
  [ "$(eb_last_reason)" = cert-binding-unavailable ] || break
  sleep 0.5
done
[ $fwd = 0 ] && [ "$(eb_last_reason)" = cert-mismatch ] ||
  eg_fail "a second DeviceId with the bound certificate: forwarded $fwd, reason $(eb_last_reason)"
eg_pass "the portal's PKCS#12 binds PHONE1 on its first FolderSync; PHONE2 with it is cert-mismatch"

echo "$E1" >browser.go
browser_end

# The keys were shown once in the browser and are nowhere else: not in a
# log, not in the audit log.
keys=$(cat keys.txt)
[ -n "$keys" ] || eg_fail "the browser wrote no keys"
sqlite3 reg.db .dump >reg.sql
for k in $keys; do
  ! grep -qF "$k" ./*.log access.log reg.sql || eg_fail "an invitation key is in a log or the registry"
done
eg_pass "the invitation keys are in no log and not in the registry (only their hashes)"
eg_stop_clean proxy
eg_stop_clean core
