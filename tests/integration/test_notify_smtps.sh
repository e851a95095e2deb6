#!/usr/bin/env bash
# Mail over implicit TLS (smtps://, tls: implicit) to a real aiosmtpd that
# speaks TLS from the first byte: an admin mail is delivered, AUTH inside
# the TLS; the same server with a CA file that does not vouch for it is
# never sent to (the row keeps retrying with a certificate error in the
# queue and the API); smtp:// with STARTTLS against it fails with a clear
# error, never in plain text.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v curl >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
python3 -c 'import aiosmtpd' 2>/dev/null || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
SMTPS=$(eg_port)
API=$(eg_port)
printf 'mail-secret-1\n' >smtp.pw
eg_start smtps python3 "$SRC/tests/integration/smtp_sink.py" "$SMTPS" "$TMP/mail" \
  "$CERTS/proxy.crt" "$CERTS/proxy.key" notify mail-secret-1 implicit
eg_wait_port "$SMTPS"
conf() { # DB URL TLS CA
  cat <<YAML
core:
  database: $1
  listen: 127.0.0.1:$API
  notify:
    templates: $SRC/conf/notify
    admins: [admin@example.com]
    admin_events: ["device.*"]
    poll: 100ms
    retry_min: 300ms
    retry_max: 1s
    smtp:
      url: $2
      tls: $3
      from: gate@example.com
      username: notify
      password_file: smtp.pw
      ca_file: $4
      timeout: 3s
YAML
}
conf reg.db "smtps://127.0.0.1:$SMTPS" implicit "$CERTS/ca.crt" >easgate.yaml
# a CA file that is not the server's issuer: a throwaway self-signed one
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.crt \
  -days 2 -subj /CN=other-ca >/dev/null 2>&1 || eg_fail "openssl"
conf bad.db "smtps://127.0.0.1:$SMTPS" implicit "$TMP/other.crt" >badca.yaml
conf st.db "smtp://127.0.0.1:$SMTPS" starttls "$CERTS/ca.crt" >starttls.yaml

block() { # CONFIG DEVICE
  "$EG" core device add "$2" -c "$1" --user alice >/dev/null 2>&1 || eg_fail "device add $2"
  "$EG" core device block "$2" -c "$1" --note "smtps test" >/dev/null 2>&1 || eg_fail "block $2"
}
block easgate.yaml PHONE1
eg_stack core easgate.yaml
for _ in $(seq 1 50); do grep -rlq "PHONE1" mail/new 2>/dev/null && break; sleep 0.2; done
f=$(grep -rl "PHONE1" mail/new 2>/dev/null | head -1)
[ -n "$f" ] || eg_fail "no mail over smtps: $(sqlite3 reg.db 'SELECT state, last_error FROM notify_queue')"
grep -q "^X-Envelope-To: admin@example.com" "$f" && grep -q "^Subject: .*PHONE1" "$f" ||
  eg_fail "the smtps mail: $(head -20 "$f")"
[ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE state='sent'")" -ge 1 ] || eg_fail "not marked sent"
eg_pass "implicit TLS (smtps://): an admin mail delivered through a server that speaks TLS from the first byte"
eg_stop_clean core

n0=$(ls mail/new | wc -l)
block badca.yaml PHONE2
eg_stack core badca.yaml
for _ in $(seq 1 50); do
  [ "$(sqlite3 bad.db "SELECT count(*) FROM notify_queue WHERE state='queued' AND attempts >= 2")" -ge 1 ] && break
  sleep 0.2
done
err=$(sqlite3 bad.db "SELECT last_error FROM notify_queue WHERE event='device.block' LIMIT 1")
grep -qiE "certificate|SSL" <<<"$err" || eg_fail "an unverified smtps server: no certificate error: $err"
echo "certificate error: $err"
[ "$(ls mail/new | wc -l)" = "$n0" ] || eg_fail "a mail went to a server the CA file does not vouch for"
TOKEN=$("$EG" core token -c badca.yaml --user root --role viewer 2>/dev/null) ||
  { echo 'correct horse battery' | "$EG" core init-admin -c badca.yaml --user root >/dev/null 2>&1;
    TOKEN=$("$EG" core token -c badca.yaml --user root --role viewer 2>/dev/null); } || eg_fail "no token"
curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API/api/v1/notifications?state=queued" >q.json
python3 -c 'import json; d=json.load(open("q.json")); r=[x for x in d["notifications"] if x["event"]=="device.block"]; assert r and r[0]["attempts"]>=2 and r[0]["last_error"], d' ||
  eg_fail "the retries are not visible over the API: $(cat q.json)"
eg_pass "smtps with a CA file that does not vouch for the server: nothing sent, retried, the certificate error in the queue and the API"
eg_stop_clean core

block starttls.yaml PHONE3
eg_stack core starttls.yaml
for _ in $(seq 1 50); do
  [ -n "$(sqlite3 st.db "SELECT last_error FROM notify_queue WHERE event='device.block' AND attempts >= 1")" ] && break
  sleep 0.2
done
err=$(sqlite3 st.db "SELECT last_error FROM notify_queue WHERE event='device.block' LIMIT 1")
[ -n "$err" ] || eg_fail "smtp:// against an implicit TLS server: no error recorded"
[ "$(ls mail/new | wc -l)" = "$n0" ] || eg_fail "a mail was sent over smtp:// to an implicit TLS server"
eg_pass "smtp:// (STARTTLS) against an implicit TLS server fails with an error in the queue ($err)"
eg_stop_clean core
