#!/usr/bin/env bash
# The enrollment portal behind the invitation link, over real TLS with curl:
# the page (who invited whom, the choice, security headers, English and
# Japanese), refusal pages with their status for malformed, unknown, used,
# expired and withdrawn keys, the iOS profile (plist parses, CMS verifies,
# the PKCS#12 inside opens with the password it carries and names the
# enrollment, not a device), Android and other (PKCS#12 + password on the
# page), the key used once even when requests race, markup in every input
# reflected escaped, and the rate limits per address and per key.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v openssl >/dev/null || exit 77
command -v curl >/dev/null || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
PORT=$(eg_port)
cat >easgate.yaml <<YAML
core:
  database: reg.db
enroll:
  public_host: mail.example.com
  url: https://127.0.0.1:$PORT
  listen: 127.0.0.1:$PORT
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
  portal_per_address: 1000
  portal_per_key: 1000
YAML
"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
invite() { # EMAIL [ARGS..]: prints the key
  local email=$1
  shift
  "$EG" core enroll invite "$email" -c easgate.yaml --json "$@" 2>>inv.log |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
eg_stack core easgate.yaml
BASE="https://127.0.0.1:$PORT"
C=(curl -s --cacert "$CERTS/ca.crt")

KEY=$(invite alice@example.com --user alice) || eg_fail "invite failed: $(cat inv.log)"
URL="$BASE/enroll?key=$KEY"
BY=$(sqlite3 reg.db "SELECT created_by FROM enroll_invitations WHERE email = 'alice@example.com'")

# ---- a. the page ----
code=$("${C[@]}" -D h.txt -o page.html -w '%{http_code}' -H 'Accept-Language: en-US,en;q=0.9' "$URL")
[ "$code" = 200 ] || eg_fail "the invitation link answered $code: $(head -c 300 page.html)"
grep -qi '^content-type: text/html; charset=utf-8' h.txt || eg_fail "not HTML: $(cat h.txt)"
grep -qi "^content-security-policy: default-src 'none'; style-src 'self';" h.txt || eg_fail "no strict CSP: $(cat h.txt)"
grep -qi "frame-ancestors 'none'" h.txt || eg_fail "CSP allows framing"
grep -qi '^x-frame-options: DENY' h.txt || eg_fail "no X-Frame-Options DENY"
grep -qi '^x-content-type-options: nosniff' h.txt || eg_fail "no nosniff"
grep -qi '^referrer-policy: no-referrer' h.txt || eg_fail "no Referrer-Policy"
grep -q '<html lang="en">' page.html || eg_fail "not English: $(head -c 300 page.html)"
grep -q "$BY invited you to set up the mail account alice (alice@example.com)" page.html ||
  eg_fail "the page does not say who invited whom: $(grep -o '<p>.*invited.*</p>' page.html)"
grep -qi '<script\|style=\|<style\| on[a-z]*=' page.html && eg_fail "inline script or style in the page"
for p in ios android other; do
  grep -q "name=\"platform\" value=\"$p\"" page.html || eg_fail "no choice $p"
done
grep -q 'When you continue, the invitation is used' page.html || eg_fail "the page does not say what happens next"
grep -q 'href="/enroll?key=[A-Z0-9]*&amp;lang=ja"' page.html || eg_fail "no switch to Japanese"
"${C[@]}" -o css.txt -w '%{content_type}' "$BASE/enroll/portal.css" | grep -q text/css || eg_fail "no stylesheet"
[ "$(sqlite3 reg.db "SELECT uses FROM enroll_invitations WHERE email='alice@example.com'")" = 0 ] ||
  eg_fail "viewing the page used the key"
eg_pass "the invitation link opens an HTML page: account, choice, what next, CSP/XFO/nosniff/no-referrer, no inline script or style, nothing used"

"${C[@]}" -o ja.html -H 'Accept-Language: fr;q=1, ja-JP;q=0.8, en;q=0.5' "$URL"
grep -q '<html lang="ja">' ja.html || eg_fail "Accept-Language ja ignored: $(head -c 200 ja.html)"
grep -q '設定する端末を選んでください' ja.html || eg_fail "no Japanese text"
grep -q 'hreflang="en"' ja.html || eg_fail "no switch to English"
"${C[@]}" -o en.html -H 'Accept-Language: ja' "$URL&lang=en"
grep -q '<html lang="en">' en.html || eg_fail "the switch (lang=en) does not win over Accept-Language"
"${C[@]}" -o slash.html -w '%{http_code}' "$BASE/enroll/?key=$KEY" | grep -qx 200 || eg_fail "/enroll/?key= does not answer"
eg_pass "Japanese from Accept-Language (by q), English by the switch, /enroll/ too"

# ---- refusal pages ----
page_is() { # STATUS TEXT QUERY-OR-URL
  local code
  code=$("${C[@]}" -D rh.txt -o r.html -w '%{http_code}' "$3")
  [ "$code" = "$1" ] || eg_fail "$3 answered $code, want $1: $(head -c 300 r.html)"
  grep -qi '^content-type: text/html' rh.txt || eg_fail "$3: the refusal is not a page: $(cat rh.txt)"
  grep -qi '^content-security-policy:' rh.txt || eg_fail "$3: the refusal has no CSP"
  grep -q "$2" r.html || eg_fail "$3: no '$2' in $(cat r.html)"
}
page_is 400 'not complete or has been changed' "$BASE/enroll?key=ABCD"
page_is 400 'not complete or has been changed' "$BASE/enroll"
page_is 404 'No invitation has this key' "$BASE/enroll?key=2222-2222-2222-2222-2222-2222-2222"
KW=$(invite wd@example.com)
ID=$(sqlite3 reg.db "SELECT max(id) FROM enroll_invitations")
"$EG" core enroll uninvite "$ID" -c easgate.yaml >/dev/null 2>&1 || eg_fail "uninvite failed"
page_is 410 'was withdrawn' "$BASE/enroll?key=$KW"
KE=$(invite ex@example.com)
sqlite3 reg.db "UPDATE enroll_invitations SET expires_ms = 1000 WHERE email='ex@example.com'"
page_is 410 'expired on 1970-01-01' "$BASE/enroll?key=$KE"
eg_pass "malformed (400), unknown (404), withdrawn and expired (410) keys get a page, not JSON"

# ---- b. iOS: the signed profile ----
code=$("${C[@]}" -o done.html -w '%{http_code}' --data-urlencode "key=$KEY" -d platform=bogus "$BASE/enroll")
[ "$code" = 400 ] || eg_fail "a bogus platform answered $code"
grep -q 'id="platform-error"' done.html || eg_fail "no error next to the choice"
grep -q 'aria-describedby="platform-error"' done.html || eg_fail "the error is not tied to the field"
code=$("${C[@]}" -o done.html -w '%{http_code}' -d "key=$KEY&platform=ios" "$BASE/enroll")
[ "$code" = 200 ] || eg_fail "choosing iOS answered $code: $(head -c 400 done.html)"
DL=$(sed -n 's|.*href="\(/enroll/dl/[A-Z0-9]*\)".*|\1|p' done.html | head -1)
[ -n "$DL" ] || eg_fail "no download link: $(cat done.html)"
grep -q 'Profile Downloaded' done.html || eg_fail "no iOS steps"
"${C[@]}" -D dh.txt -o dev.mobileconfig "$BASE$DL"
grep -qi '^content-type: application/x-apple-aspen-config' dh.txt || eg_fail "profile type: $(cat dh.txt)"
grep -qi '^content-disposition: attachment' dh.txt || eg_fail "no attachment disposition"
openssl cms -verify -inform DER -in dev.mobileconfig -CAfile "$CERTS/ca.crt" -purpose any -out dev.plist >cms.log 2>&1 ||
  eg_fail "profile signature does not verify: $(cat cms.log)"
python3 - dev.plist <<'PY' || eg_fail "the profile is not what it should be"
import plistlib, subprocess, sys
p = plistlib.load(open(sys.argv[1], "rb"))
eas = [x for x in p["PayloadContent"] if x["PayloadType"] == "com.apple.eas.account"][0]
assert eas["Host"] == "mail.example.com" and eas["UserName"] == "alice", eas
assert eas["EmailAddress"] == "alice@example.com" and eas["SSL"] is True, eas
idn = [x for x in p["PayloadContent"] if x["PayloadType"] == "com.apple.security.pkcs12"][0]
assert eas["PayloadCertificateUUID"] == idn["PayloadUUID"]
open("dev.p12", "wb").write(idn["PayloadContent"])
open("dev.pw", "w").write(idn["Password"])
PY
openssl pkcs12 -in dev.p12 -nodes -passin "file:dev.pw" -out dev.pem 2>p12.log || eg_fail "the PKCS#12 does not open: $(cat p12.log)"
openssl x509 -in dev.pem -noout -subject | grep -q 'CN = alice' || eg_fail "CN is not the user"
openssl x509 -in dev.pem -noout -ext subjectAltName | grep -q 'URI:urn:easgate:enrollment:[A-Z0-9]\{20\}, email:alice@example.com' ||
  eg_fail "SAN: $(openssl x509 -in dev.pem -noout -ext subjectAltName)"
openssl x509 -in dev.pem -noout -ext subjectAltName | grep -q 'urn:easgate:device' && eg_fail "the portal certificate names a device"
openssl verify -CAfile device-ca.crt dev.pem >/dev/null || eg_fail "does not chain to the device CA"
ENR=$(openssl x509 -in dev.pem -noout -ext subjectAltName | sed -n 's/.*enrollment:\([A-Z0-9]*\).*/\1/p')
sqlite3 reg.db "SELECT device_id || '|' || user FROM enroll_certs WHERE enrollment = '$ENR'" | grep -qx '|alice' ||
  eg_fail "the certificate is not recorded unbound for alice"
sqlite3 reg.db "SELECT count(*) FROM audit WHERE action = 'enroll.portal' AND detail LIKE '%$ENR%'" | grep -qx 1 ||
  eg_fail "no enroll.portal audit line"
"${C[@]}" -o again.html -w '%{http_code}' "$URL" | grep -qx 410 || eg_fail "the used key still opens the page"
grep -q 'has been used already' again.html || eg_fail "no 'used' page"
"${C[@]}" -o again.html -w '%{http_code}' -d "key=$KEY&platform=ios" "$BASE/enroll" | grep -qx 410 ||
  eg_fail "the used key enrolled again"
"${C[@]}" -o none.html -w '%{http_code}' "$BASE/enroll/dl/AAAAAAAAAAAAAAAAAAAAAAAAAA" | grep -qx 404 ||
  eg_fail "an unknown download token did not 404"
eg_pass "iOS: signed profile (CMS verifies), EAS account + PKCS#12 that opens with its password; CN user, SAN enrollment id and no device; key used once"

# ---- b. Android and other ----
KA=$(invite bob@example.com --user 'CORP\bob')
"${C[@]}" -o and.html -H 'Accept-Language: en' -d "key=$KA&platform=android" "$BASE/enroll"
PW=$(sed -n 's|.*<code>\([^<]*\)</code>.*|\1|p' and.html | head -1)
DL=$(sed -n 's|.*href="\(/enroll/dl/[A-Z0-9]*\)".*|\1|p' and.html | head -1)
[ -n "$PW" ] && [ -n "$DL" ] || eg_fail "no password or download on the Android page: $(cat and.html)"
for t in Gmail 'Samsung Email' 'mail.example.com' 'CORP\\bob' 'Client certificate'; do
  grep -q "$t" and.html || eg_fail "Android page lacks '$t'"
done
"${C[@]}" -D ah.txt -o bob.p12 "$BASE$DL"
grep -qi '^content-type: application/x-pkcs12' ah.txt || eg_fail "p12 type: $(cat ah.txt)"
openssl pkcs12 -in bob.p12 -nodes -passin "pass:$PW" 2>/dev/null | grep -q 'BEGIN PRIVATE KEY' ||
  eg_fail "the Android PKCS#12 does not open with the password on the page"
KO=$(invite carol@example.com)
"${C[@]}" -o oth.html -H 'Accept-Language: ja' -d "key=$KO&platform=other&lang=ja" "$BASE/enroll"
grep -q '<html lang="ja">' oth.html || eg_fail "the form's language is lost"
grep -q 'アカウントの設定' oth.html && grep -q 'mail.example.com' oth.html || eg_fail "no manual settings: $(cat oth.html)"
eg_pass "Android: PKCS#12 + password + Gmail/Samsung steps; other: manual settings (in Japanese)"

# ---- the key is used once, whatever races ----
KR=$(invite race@example.com)
RACE=()
for i in 1 2 3 4 5 6; do
  "${C[@]}" -o "race$i.html" -w '%{http_code}\n' -d "key=$KR&platform=android" "$BASE/enroll" >"race$i.code" &
  RACE+=($!)
done
wait "${RACE[@]}"
[ "$(cat race*.code | grep -c 200)" = 1 ] || eg_fail "racing requests: $(cat race*.code | tr '\n' ' ') (want one 200)"
[ "$(sqlite3 reg.db "SELECT count(*) FROM enroll_certs c JOIN enroll_invitations i ON i.id = c.invitation_id WHERE i.email = 'race@example.com'")" = 1 ] ||
  eg_fail "racing requests issued more than one certificate"
KM=$(invite multi@example.com --max-uses 2)
for i in 1 2 3; do "${C[@]}" -o /dev/null -w '%{http_code}\n' -d "key=$KM&platform=other" "$BASE/enroll"; done >multi.codes
[ "$(tr '\n' ' ' <multi.codes)" = "200 200 410 " ] || eg_fail "a key of 2 uses: $(cat multi.codes)"
eg_pass "six racing requests with one key: one certificate; a key of two uses serves two"

# ---- d. markup in every input ----
X='"><script>alert(1)</script><b x='"'"'y'"'"'>'
XE=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))' "$X")
KX=$(invite "x@example.com" --user 'a<b>&"c')
# The inviter's name comes from an admin account: markup there too.
sqlite3 reg.db "UPDATE enroll_invitations SET created_by = '<i>admin</i>' WHERE email = 'x@example.com'"
check_clean() { # FILE WHAT
  grep -q '<script>\|<b x=\|<i>' "$1" && eg_fail "$2: markup reflected: $(grep -o '.\{40\}<script>.\{20\}' "$1" | head -2)"
  return 0
}
"${C[@]}" -o x1.html "$BASE/enroll?key=$XE&lang=$XE"
check_clean x1.html "key and lang in the query"
"${C[@]}" -o x2.html -H "Accept-Language: $X" "$BASE/enroll?key=$KX"
check_clean x2.html "Accept-Language"
grep -q '&lt;i&gt;admin&lt;/i&gt; invited you to set up the mail account a&lt;b&gt;&amp;&quot;c' x2.html ||
  eg_fail "the inviter and user are not escaped: $(grep -o '<p>.*invited.*</p>' x2.html)"
"${C[@]}" -o x3.html --data-urlencode "key=$KX" --data-urlencode "platform=$X" --data-urlencode "lang=$X" "$BASE/enroll"
check_clean x3.html "platform and lang in the form"
"${C[@]}" -o x4.html --data-urlencode "key=$X" -d platform=ios "$BASE/enroll"
check_clean x4.html "key in the form"
"${C[@]}" -o x5.html "$BASE/enroll/dl/$XE"
check_clean x5.html "download token"
"${C[@]}" -o x6.html --data-urlencode "key=$KX" -d platform=android "$BASE/enroll"
check_clean x6.html "the result page"
grep -q 'a&lt;b&gt;&amp;&quot;c' x6.html || eg_fail "the user name is not escaped on the result page"
eg_pass "script and markup in the key, platform, lang, Accept-Language, token and user name come back escaped"

# ---- d. rate limits ----
eg_stop_clean core
sed -i 's/portal_per_address: 1000/portal_per_address: 8/; s/portal_per_key: 1000/portal_per_key: 3/' easgate.yaml
eg_stack core easgate.yaml
KL=$(invite limit@example.com)
for i in 1 2 3 4; do "${C[@]}" -o /dev/null -w '%{http_code}\n' "$BASE/enroll?key=$KL"; done >key.codes
[ "$(tr '\n' ' ' <key.codes)" = "200 200 200 429 " ] || eg_fail "per key: $(cat key.codes)"
"${C[@]}" -D lh.txt -o lim.html "$BASE/enroll?key=$KL"
grep -qi '^retry-after: [0-9]' lh.txt || eg_fail "429 without Retry-After"
grep -q 'Too many requests' lim.html || eg_fail "the 429 is not a page: $(cat lim.html)"
for i in 1 2 3 4 5 6; do "${C[@]}" -o /dev/null -w '%{http_code}\n' "$BASE/enroll?key=2222-2222-2222-2222-2222-2222-222$i"; done >addr.codes
grep -q 429 addr.codes || eg_fail "per address: never limited: $(cat addr.codes | tr '\n' ' ')"
eg_pass "rate limits: per key (3) and per address (8) answer 429 pages with Retry-After"
eg_stop_clean core
