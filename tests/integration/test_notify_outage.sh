#!/usr/bin/env bash
# Admin mails about outages, through a real SMTP server (aiosmtpd, STARTTLS)
# with the real proxy, core, Redis and the Exchange simulator:
#   - the mail server behind the proxy stops: the proxy answers 503, reports
#     it on the sightings stream, the core audits proxy.upstream_down once
#     (however many requests and workers met it) and the admins get a mail;
#     it comes back: proxy.upstream_up and a mail;
#   - Redis stops and comes back: core.redis_down / core.redis_up mails;
#   - the device CA ends in 10 days: an enroll.ca_expiring mail.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
for t in redis-server curl sqlite3 openssl; do command -v $t >/dev/null || exit 77; done
python3 -c 'import aiosmtpd' 2>/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
SMTP=$(eg_port)
API=$(eg_port)
ENR=$(eg_port)
printf 'mail-secret-1\n' >smtp.pw
eg_start smtp python3 "$SRC/tests/integration/smtp_sink.py" "$SMTP" "$TMP/mail" \
  "$CERTS/proxy.crt" "$CERTS/proxy.key" notify mail-secret-1
eg_wait_port "$SMTP"
printf 'unknown_devices: allow\n' >policy.yaml
eg_redis
eg_exsim
eg_conf - <<YAML
core:
  database: reg.db
  listen: 127.0.0.1:$API
  redis_retry: 300ms
  notify:
    templates: $SRC/conf/notify
    site: Example Mail
    admins: [admin@example.com]
    poll: 100ms
    smtp:
      url: smtp://127.0.0.1:$SMTP
      from: gate@example.com
      username: notify
      password_file: smtp.pw
      ca_file: $CERTS/ca.crt
enroll:
  public_host: mail.example.com
  listen: 127.0.0.1:$ENR
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
sed -i 's/^\(      upstream:\)$/\1\n        down_time: 1s/' easgate.yaml
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout sca.key -out sca.crt \
  -days 10 -subj /CN=short-ca -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 || eg_fail "openssl CA"
"$EG" core init-ca -c easgate.yaml --import sca.crt --import-key sca.key >ca.log 2>&1 || eg_fail "init-ca --import: $(cat ca.log)"
eg_stack -n core core easgate.yaml
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" core.log && break; sleep 0.1; done
eg_stack proxy easgate.yaml

# admin_mail EVENT: the file of the first mail to the admins about EVENT (waits up to 15 s)
admin_mail() {
  local f
  for _ in $(seq 1 75); do
    f=$(grep -rl "^Subject: \[Example Mail\] $1:" mail/new 2>/dev/null | head -1)
    [ -n "$f" ] && { echo "$f"; return 0; }
    sleep 0.2
  done
  return 1
}
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >fs.wbxml # FolderSync, SyncKey 0
req() { # the HTTP status of one FolderSync
  curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @fs.wbxml \
    "http://127.0.0.1:$proxy_port/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=PHONE1&DeviceType=iPhone"
}

f=$(admin_mail enroll.ca_expiring) || eg_fail "no admin mail about the device CA: $(ls mail/new 2>/dev/null)"
grep -q "^X-Envelope-To: admin@example.com" "$f" || eg_fail "the CA mail: $(head -20 "$f")"
eg_pass "the device CA ending in 10 days: an admin mail (enroll.ca_expiring)"

[ "$(req)" = 200 ] || eg_fail "the mail server does not answer through the proxy"
kill "$exsim_pid"; wait "$exsim_pid" 2>/dev/null
for _ in 1 2 3 4 5 6; do [ "$(req)" = 503 ] || eg_fail "no 503 with the mail server gone"; done
f=$(admin_mail proxy.upstream_down) || eg_fail "no admin mail about the mail server outage: $(sqlite3 reg.db "SELECT action, detail FROM audit")"
python3 - "$f" "$exsim_port" <<'PY' || eg_fail "the outage mail: $(cat "$f")"
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
assert m["To"] == "admin@example.com" and m["Subject"] == "[Example Mail] proxy.upstream_down: t", m["Subject"]
body = m.get_body(("plain",)).get_content()
assert "reaches none of instance t's mail server urls: http://127.0.0.1:%s" % sys.argv[2] in body, body
PY
sleep 1
[ "$(sqlite3 reg.db "SELECT count(*) FROM audit WHERE action='proxy.upstream_down'")" = 1 ] ||
  eg_fail "one outage audited more than once: $(sqlite3 reg.db "SELECT * FROM audit WHERE action LIKE 'proxy.upstream%'")"
eg_pass "the mail server behind the proxy stops: 503s, one proxy.upstream_down audit row and an admin mail naming the instance and url"

eg_start exsim "$BUILD/exsim" --listen "127.0.0.1:$exsim_port"
eg_wait_port "$exsim_port"
ok=0
for _ in $(seq 1 30); do [ "$(req)" = 200 ] && { ok=1; break; }; sleep 0.3; done
[ $ok = 1 ] || eg_fail "the mail server back, the proxy still answers 503"
for _ in 1 2 3 4; do req >/dev/null; done # every worker meets it again
f=$(admin_mail proxy.upstream_up) || eg_fail "no admin mail about the mail server coming back"
grep -q "^Subject: \[Example Mail\] proxy.upstream_up: t" "$f" || eg_fail "the up mail: $(head -20 "$f")"
eg_pass "the mail server back: proxy.upstream_up and an admin mail"

kill "$redis_pid"; wait "$redis_pid" 2>/dev/null
admin_mail core.redis_down >/dev/null || eg_fail "no admin mail about Redis lost"
eg_redis
admin_mail core.redis_up >/dev/null || eg_fail "no admin mail about Redis back"
eg_pass "Redis lost and back: core.redis_down and core.redis_up mails to the admins"
eg_stop_clean proxy
eg_stop_clean core
