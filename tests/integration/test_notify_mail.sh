#!/usr/bin/env bash
# E-mail notifications through a real SMTP server on loopback (aiosmtpd,
# STARTTLS required, AUTH, delivering into a Maildir here): invitation mails
# in Japanese and English with the enrollment link and the QR code as an
# inline PNG, RFC 5322 structure; the user's mails for enrollment,
# quarantine and block (in the invitation's language); admin mails; the
# per-recipient rate limit (the admins' digest, every 2 s here, is exempt
# and sums up the period's events); an SMTP outage with a core restart in the middle
# loses nothing and sends nothing twice; counters in /metrics.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v curl >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
python3 -c 'import aiosmtpd' 2>/dev/null || exit 77
CERTS=$(eg_certs)
cd "$TMP" || exit 1
PORT=$(eg_port)
API=$(eg_port)
SMTP=$(eg_port)
printf 'mail-secret-1\n' >smtp.pw
cat >easgate.yaml <<YAML
core:
  database: reg.db
  listen: 127.0.0.1:$API
  notify:
    templates: $SRC/conf/notify
    site: Example Mail
    admins: [admin@example.com]
    admin_events: ["device.*"]
    poll: 100ms
    retry_min: 300ms
    retry_max: 1s
    rate_limit: 6
    cert_warn: [23h59m58s, 1h]
    digest: 2s
    smtp:
      url: smtp://127.0.0.1:$SMTP
      tls: starttls
      from: gate@example.com
      username: notify
      password_file: smtp.pw
      ca_file: $CERTS/ca.crt
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  validity: 1d
  renew_before: 1h
  listen: 127.0.0.1:$PORT
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
echo 'correct horse battery' | "$EG" core init-admin -c easgate.yaml --user root >/dev/null 2>&1 ||
  eg_fail "init-admin failed"
ADMIN=$("$EG" core token -c easgate.yaml --user root --role admin 2>/dev/null) || eg_fail "no admin token"

# ---- a misspelt template variable: easgate check and the core refuse, naming it ----
cp -r "$SRC/conf/notify" badtpl
sed -i 's/{{reason}}/{{resaon}}/' badtpl/ja/blocked.txt
sed -e "s#templates: $SRC/conf/notify#templates: $TMP/badtpl#" -e '/^enroll:/,$d' easgate.yaml >bad.yaml
rc=0; "$EG" check --offline -q -c bad.yaml >check.out 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "badtpl/ja/blocked.txt:[0-9]*: unknown variable {{resaon}}; the blocked template may use: .*reason" check.out ||
  eg_fail "easgate check accepted a misspelt variable (exit $rc): $(cat check.out)"
rc=0; timeout 20 "$EG" core -c bad.yaml >badcore.out 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "unknown variable {{resaon}}" badcore.out || eg_fail "the core started with a misspelt variable (exit $rc): $(cat badcore.out)"
eg_pass "a misspelt template variable: easgate check (exit 2) and the core refuse with file, line and the variables allowed"

sink() {
  eg_start smtp python3 "$SRC/tests/integration/smtp_sink.py" "$SMTP" "$TMP/mail" \
    "$CERTS/proxy.crt" "$CERTS/proxy.key" notify mail-secret-1
  eg_wait_port "$SMTP" || eg_fail "the SMTP sink did not start"
}
sink
eg_stack core easgate.yaml
URL="https://127.0.0.1:$PORT/enroll/v1"
nmail() { grep -rL '^X-Envelope-To: admin@' "$TMP/mail/new" 2>/dev/null | wc -l; } # users' mails
wait_mail() { # N: wait (bounded) until N messages are in the Maildir
  for _ in $(seq 1 150); do [ "$(nmail)" -ge "$1" ] && return 0; sleep 0.1; done
  eg_fail "want $1 mails, the Maildir has $(nmail); queue: $(sqlite3 reg.db 'SELECT id,target,event,state,attempts,last_error FROM notify_queue')"
}
invite() { # EMAIL USER LANG
  curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o "inv-$2.json" -w '%{http_code}' \
    -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    --data-binary "{\"email\":\"$1\",\"user\":\"$2\",\"mail\":true,\"lang\":\"$3\"}" "$URL/invitations"
}

# ---- invitations by mail: language, link, QR image, structure ----
[ "$(invite alice@example.com alice ja)" = 201 ] || eg_fail "invite alice: $(cat inv-alice.json)"
[ "$(invite bob@example.com bob en)" = 201 ] || eg_fail "invite bob: $(cat inv-bob.json)"
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o bad.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
  --data-binary '{"email":"not an address","mail":true}' "$URL/invitations")
[ "$code" = 400 ] || eg_fail "a malformed address answered $code, want 400"
wait_mail 2
python3 - "$TMP/mail" inv-alice.json inv-bob.json <<'PY' || eg_fail "invitation mails wrong"
import base64, email, email.policy, email.utils, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
inv = {json.load(open(f))["email"]: json.load(open(f)) for f in sys.argv[2:4]}
seen = {}
for key in box.keys():
    raw = box.get_bytes(key)
    head, _, _ = raw.partition(b"\r\n\r\n")
    # RFC 5322: CRLF only, lines at most 998 (we keep to 78), no bare LF
    for line in raw.split(b"\r\n"):
        assert b"\n" not in line and b"\r" not in line, "bare LF/CR"
        assert len(line) <= 78, ("long line", line[:80])
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert not m.defects, m.defects
    for h in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert len(m.get_all(h, [])) == 1, (h, m.get_all(h))
    assert email.utils.parsedate_to_datetime(m["Date"]) is not None
    assert m["From"].addresses[0].addr_spec == "gate@example.com"
    assert m["From"].addresses[0].display_name == "Example Mail"
    to = m["To"].addresses[0].addr_spec
    assert m["X-Envelope-To"] == to
    if to in inv:  # the admins' mails (the digest) are checked below
        seen[to] = m
for to, m in seen.items():
    i = inv[to]
    assert m.get_content_type() == "multipart/alternative", m.get_content_type()
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert i["url"] in text and i["key"] in text, text
    assert "cid:qr@easgate" in html
    imgs = [p for p in m.walk() if p.get_content_type() == "image/png"]
    assert len(imgs) == 1 and imgs[0]["Content-ID"] == "<qr@easgate>"
    assert imgs[0].get_content_disposition() == "inline"
    png = imgs[0].get_content()
    assert png == base64.b64decode(i["qr_png"]), "the QR image is not the invitation's"
    for p in m.walk():
        assert not p.defects, p.defects
a, b = seen["alice@example.com"], seen["bob@example.com"]
assert a["Content-Language"] == "ja" and b["Content-Language"] == "en"
assert "スマートフォン" in a["Subject"] and "様" in a.get_body(("plain",)).get_content()
assert a["Subject"].startswith("Example Mail")
assert b["Subject"] == "Example Mail: set up your phone for company mail", b["Subject"]
assert "Hello bob" in b.get_body(("plain",)).get_content()
PY
eg_pass "invitation mails over STARTTLS+AUTH: ja and en, link and key, inline QR PNG equal to the invitation's, RFC 5322 structure"

# ---- the user's events, in the invitation's language; admin mails ----
KEY=$(python3 -c 'import json; print(json.load(open("inv-alice.json"))["key"])')
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout a.key -subj /CN=x -out a.csr 2>/dev/null
python3 - "$KEY" a.csr >req.json <<'PY'
import json, sys
print(json.dumps({"key": sys.argv[1], "device_id": "ALICEPHONE1", "csr": open(sys.argv[2]).read(), "platform": "android"}))
PY
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o resp.json -w '%{http_code}' --data-binary @req.json "$URL/enroll")
[ "$code" = 200 ] || eg_fail "enrollment answered $code: $(cat resp.json)"
"$EG" core device quarantine ALICEPHONE1 -c easgate.yaml --note "new phone" >/dev/null 2>&1 || eg_fail "quarantine"
"$EG" core device block ALICEPHONE1 -c easgate.yaml --note "lost" >/dev/null 2>&1 || eg_fail "block"
subjects() { # TO: the decoded subjects of the mails to TO
  python3 - "$TMP/mail" "$1" <<'PY'
import email, email.policy, mailbox, sys
for k in mailbox.Maildir(sys.argv[1], create=False).keys():
    m = email.message_from_bytes(mailbox.Maildir(sys.argv[1], create=False).get_bytes(k), policy=email.policy.default)
    if m["To"].addresses[0].addr_spec == sys.argv[2]:
        print(m["Subject"])
PY
}
dump() { sqlite3 reg.db "SELECT 'audit',id,actor,action,target,detail FROM audit; SELECT 'queue',id,target,event,state,attempts,last_error FROM notify_queue"; }
for _ in $(seq 1 40); do [ "$(subjects alice@example.com | wc -l)" -ge 4 ] && break; sleep 0.2; done
subjects alice@example.com >alice.subj
grep -q "ALICEPHONE1 の登録が完了しました" alice.subj || eg_fail "no enrolled mail (ja): $(cat alice.subj)"
grep -q "ALICEPHONE1 は承認待ちです" alice.subj || eg_fail "no quarantined mail (ja): $(cat alice.subj) $(dump)"
grep -q "ALICEPHONE1 はブロックされました" alice.subj || eg_fail "no blocked mail (ja): $(cat alice.subj)"
[ "$(wc -l <alice.subj)" = 4 ] || eg_fail "alice got $(wc -l <alice.subj) mails, want 4: $(cat alice.subj)"
asubj() { subjects admin@example.com | grep -v '^\[Example Mail\] summary '; }
for _ in $(seq 1 40); do [ "$(asubj | wc -l)" -ge 3 ] && break; sleep 0.2; done
asubj >admin.subj
grep -q "^\[Example Mail\] device.block: ALICEPHONE1" admin.subj || eg_fail "no admin mail for the block: $(cat admin.subj)"
eg_pass "user mails (enrolled, quarantined, blocked) in the invitation's language; admin mails for device.*"

# ---- rate limit: the admin's seventh mail within the hour is held back ----
for a in reset reprovision reset reprovision; do
  "$EG" core device $a ALICEPHONE1 -c easgate.yaml >/dev/null 2>&1 || eg_fail "device $a"
done
for _ in $(seq 1 40); do [ "$(asubj | wc -l)" -ge 6 ] && break; sleep 0.2; done
sleep 1
na=$(asubj | wc -l)
[ "$na" = 6 ] || eg_fail "the admin got $na mails, want 6 (rate_limit): $(asubj) $(dump)"
held=$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target='admin@example.com' AND state='queued' AND last_error LIKE '%rate limit%'")
[ "$held" -ge 1 ] || eg_fail "nothing held back by the rate limit: $(sqlite3 reg.db 'SELECT target,event,state,last_error FROM notify_queue')"
eg_pass "rate limit: 6 mails to the admin within rate_window, $held held back (queued, not lost)"
python3 - "$TMP/mail" <<'PY' || eg_fail "no digest with the period's events: $(dump)"
import email, email.policy, mailbox, sys
b = mailbox.Maildir(sys.argv[1], create=False)
ds = [email.message_from_bytes(b.get_bytes(k), policy=email.policy.default) for k in b.keys()]
ds = [m for m in ds if m["Subject"].startswith("[Example Mail] summary ")]
assert ds, "no digest"
texts = [m.get_body(("plain",)).get_content() for m in ds]
assert any("device.block" in t for t in texts) and any("device.quarantine" in t for t in texts), texts
assert all("devices waiting for approval: 0" in t for t in texts), texts
PY
eg_pass "digest: the admins' summary of each period by event, not held back by the rate limit"

# ---- outage: SMTP down, core restarted, SMTP back: nothing lost, nothing twice ----
before=$(nmail)
kill "$smtp_pid"; wait "$smtp_pid" 2>/dev/null
"$EG" core device quarantine ALICEPHONE1 -c easgate.yaml >/dev/null 2>&1 || eg_fail "quarantine 2"
for _ in $(seq 1 100); do
  [ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target='alice@example.com' AND state='queued' AND attempts >= 2")" -ge 1 ] && break
  sleep 0.1
done
[ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target='alice@example.com' AND state='queued' AND attempts >= 2")" -ge 1 ] ||
  eg_fail "no retried mail during the outage: $(sqlite3 reg.db 'SELECT target,event,state,attempts,last_error FROM notify_queue')"
curl -s --max-time 5 "http://127.0.0.1:$API/metrics" >m1.txt
grep -Eq '^easgate_core_notify_retries_total\{channel="mail"\} [1-9]' m1.txt || eg_fail "no retries in /metrics: $(grep notify m1.txt)"
grep -Eq '^easgate_core_notify_queue_depth [1-9]' m1.txt || eg_fail "queue depth 0 during the outage: $(grep notify m1.txt)"
eg_stop_clean core
eg_stack core easgate.yaml
sink
for _ in $(seq 1 40); do [ "$(subjects alice@example.com | wc -l)" -ge 6 ] && break; sleep 0.2; done
sleep 1
subjects alice@example.com >alice2.subj
# 6: the five before and after the outage, and (the scan at the restart)
# the warning of the one-day certificate two seconds into its life (lead
# 23h59m58s); the 1h lead has not come yet.
[ "$(wc -l <alice2.subj)" = 6 ] || eg_fail "after the outage alice has $(wc -l <alice2.subj) mails, want 6: $(cat alice2.subj) $(dump)"
grep -q "ALICEPHONE1 の証明書の有効期限まであと 1 日です" alice2.subj || eg_fail "no certificate warning: $(cat alice2.subj)"
[ "$(grep -c 'は承認待ちです' alice2.subj)" = 2 ] || eg_fail "the quarantine mail of the outage is missing: $(cat alice2.subj)"
dups=$(python3 - "$TMP/mail" <<'PY'
import email, mailbox, sys, collections
b = mailbox.Maildir(sys.argv[1], create=False)
c = collections.Counter(email.message_from_bytes(b.get_bytes(k))["Message-ID"] for k in b.keys())
print(sum(1 for v in c.values() if v > 1))
PY
)
[ "$dups" = 0 ] || eg_fail "$dups messages delivered twice"
curl -s --max-time 5 "http://127.0.0.1:$API/metrics" >m2.txt
grep -Eq '^easgate_core_notify_sent_total\{channel="mail"\} [1-9]' m2.txt || eg_fail "no sent mails in /metrics: $(grep notify m2.txt)"
eg_pass "SMTP outage across a core restart: the queued mail retried, delivered once when the server came back; certificate warning at its lead time"
eg_stop_clean core
