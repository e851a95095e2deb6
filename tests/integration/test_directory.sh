#!/usr/bin/env bash
# core.directory against a throwaway OpenLDAP slapd on loopback (schema and
# entries from tests/data/ldap/, StartTLS and LDAPS with the dev PKI):
# lookups by name, UPN and mail with nested groups and the AD disabled bit;
# a server certificate that does not verify is refused; invitations refuse
# unknown and disabled users; the core's periodic sync blocks the devices of
# a user who left and of a disabled one; in an outage cached answers are
# served up to max_stale and refused after (never fail-open), and the sync
# leaves devices alone. A user with no invitation gets the mail about her
# device at the directory's address.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
[ -x /usr/sbin/slapd ] && command -v slapadd >/dev/null && command -v ldapdelete >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
command -v curl >/dev/null || exit 77
CERTS=$(eg_certs)
DATA="$SRC/tests/data/ldap"
cd "$TMP" || exit 1
LDAP=$(eg_port)
LDAPS=$(eg_port)
PORT=$(eg_port)
mkdir ldapdb
sed -e "s#@TMP@#$TMP#g; s#@CERTS@#$CERTS#g; s#@DATA@#$DATA#g" "$DATA/slapd.conf.in" >slapd.conf
slapadd -f slapd.conf -l "$DATA/directory.ldif" >slapadd.log 2>&1 || eg_fail "slapadd: $(cat slapadd.log)"
slapd_up() {
  # -d 0: in the foreground, so the pid eg_start keeps is slapd's own
  eg_start slapd /usr/sbin/slapd -h "ldap://127.0.0.1:$LDAP/ ldaps://127.0.0.1:$LDAPS/" -f slapd.conf -d 0
  eg_wait_port "$LDAP"
}
slapd_up
printf 'reader-secret-1\n' >bind.pw
dircfg() { # URL [extra lines]
  cat <<YAML
  directory:
    url: $1
    ca_file: $CERTS/ca.crt
    bind_dn: cn=reader,dc=example,dc=com
    bind_password_file: bind.pw
    base_dn: dc=example,dc=com
    user_filter: (objectClass=inetOrgPerson)
    groups: member
    group_filter: (objectClass=groupOfNames)
    cache_ttl: 1s
    max_stale: 5s
    sync: 1s
YAML
}
{ printf 'core:\n  database: reg.db\n'; dircfg "ldap://127.0.0.1:$LDAP"; } >lookup.yaml
{ printf 'core:\n  database: reg.db\n'; dircfg "ldaps://127.0.0.1:$LDAPS"; } >ldaps.yaml
{ printf 'core:\n  database: reg.db\n'; dircfg "ldap://127.0.0.1:$LDAP" | grep -v ca_file; } >noca.yaml

# ---- lookups: name, UPN, mail; nested groups; disabled ----
lookup() { "$EG" core directory lookup "$1" -c "${2:-lookup.yaml}"; }
for who in alice alice@corp.example.com alice@example.com; do
  lookup "$who" >a.json 2>a.err || eg_fail "lookup $who: $(cat a.err)"
  python3 - a.json <<'PY' || eg_fail "lookup $who: $(cat a.json)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dn"] == "uid=alice,ou=people,dc=example,dc=com" and d["mail"] == "alice@example.com", d
assert d["language"] == "ja" and d["upn"] == "alice@corp.example.com" and d["disabled"] is False, d
assert sorted(d["groups"]) == ["all-staff", "sales", "staff"], d["groups"]
PY
done
lookup carol >c.json 2>&1 || eg_fail "lookup carol: $(cat c.json)"
python3 -c 'import json,sys; d=json.load(open("c.json")); assert d["disabled"] is True and d["groups"] == ["admins"], d' ||
  eg_fail "carol is not disabled: $(cat c.json)"
rc=0; lookup nobody >n.out 2>n.err || rc=$?
[ "$rc" = 3 ] && grep -q "'nobody' is not in the directory" n.err || eg_fail "unknown user: exit $rc, $(cat n.err)"
rc=0; lookup 'a*)(uid=*' >i.out 2>i.err || rc=$?
[ "$rc" = 3 ] || eg_fail "a filter injection matched something (exit $rc): $(cat i.out i.err)"
eg_pass "lookup by name, UPN and mail over StartTLS; nested groups (sales < staff < all-staff); AD disabled bit; unknown user exit 3; filter metacharacters escaped"

lookup bob ldaps.yaml >b.json 2>b.err || eg_fail "LDAPS lookup: $(cat b.err)"
grep -q '"admins"' b.json || eg_fail "bob's groups over LDAPS: $(cat b.json)"
rc=0; lookup bob noca.yaml >x.out 2>x.err || rc=$?
[ "$rc" = 1 ] && grep -q "StartTLS failed" x.err || eg_fail "an unverified server certificate was accepted (exit $rc): $(cat x.out x.err)"
eg_pass "LDAPS lookup; a server certificate the CA file does not vouch for is refused"

# ---- the core: invitations vetted, periodic sync ----
SMTP=$(eg_port)
printf 'mail-secret-1\n' >smtp.pw
eg_start smtp python3 "$SRC/tests/integration/smtp_sink.py" "$SMTP" "$TMP/mail" \
  "$CERTS/proxy.crt" "$CERTS/proxy.key" notify mail-secret-1
eg_wait_port "$SMTP"
{
  printf 'core:\n  database: reg.db\n'
  dircfg "ldap://127.0.0.1:$LDAP"
  cat <<YAML
  notify:
    templates: $SRC/conf/notify
    poll: 100ms
    smtp:
      url: smtp://127.0.0.1:$SMTP
      from: gate@example.com
      username: notify
      password_file: smtp.pw
      ca_file: $CERTS/ca.crt
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  listen: 127.0.0.1:$PORT
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
} >easgate.yaml
"$EG" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca: $(cat init.log)"
echo 'correct horse battery' | "$EG" core init-admin -c easgate.yaml --user root >/dev/null 2>&1 || eg_fail "init-admin"
ADMIN=$("$EG" core token -c easgate.yaml --user root --role admin 2>/dev/null) || eg_fail "no admin token"
for d in ALICE1:alice CAROL1:carol DAVE1:dave; do
  "$EG" core device add "${d%%:*}" -c easgate.yaml --user "${d#*:}" >/dev/null 2>&1 || eg_fail "device add $d"
  "$EG" core device manage "${d%%:*}" -c easgate.yaml --user "${d#*:}" >/dev/null 2>&1 || eg_fail "device manage $d"
done
eg_stack core easgate.yaml
invite() { # USER: the HTTP status; the answer in inv.json
  curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o inv.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
    --data-binary "{\"email\":\"$1@example.com\",\"user\":\"$1\"}" "https://127.0.0.1:$PORT/enroll/v1/invitations"
}
[ "$(invite alice)" = 201 ] || eg_fail "alice not invited: $(cat inv.json)"
[ "$(invite carol)" = 400 ] && grep -q "disabled in the directory" inv.json || eg_fail "disabled carol: $(cat inv.json)"
[ "$(invite nobody)" = 400 ] && grep -q "not a user of the directory" inv.json || eg_fail "unknown user: $(cat inv.json)"
eg_pass "invitations: a directory user is invited; disabled and unknown ones are refused with the reason"
ginvite() { # GROUP: the HTTP status; the answer in ginv.json
  curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o ginv.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
    --data-binary "{\"group\":\"$1\",\"mail\":true}" "https://127.0.0.1:$PORT/enroll/v1/invitations"
}
[ "$(ginvite staff)" = 201 ] || eg_fail "group staff: $(cat ginv.json)"
python3 - <<'PY' || eg_fail "group staff answer: $(cat ginv.json)"
import json
d = json.load(open("ginv.json"))
assert sorted(x["user"] for x in d["invited"]) == ["alice", "dave"] and d["skipped"] == [], d
assert all("key" not in x for x in d["invited"])
PY
[ "$(ginvite admins)" = 201 ] || eg_fail "group admins: $(cat ginv.json)"
python3 - <<'PY' || eg_fail "group admins answer: $(cat ginv.json)"
import json
d = json.load(open("ginv.json"))
assert [x["user"] for x in d["invited"]] == ["bob"], d
assert d["skipped"] == [{"user": "carol", "why": "disabled in the directory"}], d
PY
[ "$(ginvite nope)" = 404 ] || eg_fail "unknown group: $(cat ginv.json)"
for _ in $(seq 1 50); do [ "$(grep -rl '^X-Envelope-To: dave@example.com' "$TMP/mail/new" 2>/dev/null | wc -l)" -ge 1 ] && break; sleep 0.2; done
grep -rl "^X-Envelope-To: dave@example.com" "$TMP/mail/new" >/dev/null 2>&1 || eg_fail "no invitation mail to dave"
grep -l "^X-Envelope-To: alice@example.com" -r "$TMP/mail/new" | xargs grep -l "^Content-Language: ja" >/dev/null ||
  eg_fail "alice's group invitation is not in her directory language"
eg_pass "group invitations: nested members mailed (alice in the directory's language), the disabled member skipped with the reason, unknown group 404"

ovr() { sqlite3 reg.db "SELECT override FROM devices WHERE device_id='$1'"; }
for _ in $(seq 1 50); do [ "$(ovr CAROL1)" = block ] && break; sleep 0.2; done
[ "$(ovr CAROL1)" = block ] || eg_fail "the disabled user's device is not blocked: $(ovr CAROL1)"
[ "$(ovr ALICE1)" = none ] && [ "$(ovr DAVE1)" = none ] || eg_fail "sync touched others: alice $(ovr ALICE1) dave $(ovr DAVE1)"
ldapdelete -x -H "ldap://127.0.0.1:$LDAP" -D cn=admin,dc=example,dc=com -w admin-secret-1 \
  uid=dave,ou=people,dc=example,dc=com >del.log 2>&1 || eg_fail "ldapdelete: $(cat del.log)"
for _ in $(seq 1 50); do [ "$(ovr DAVE1)" = block ] && break; sleep 0.2; done
[ "$(ovr DAVE1)" = block ] || eg_fail "the device of a user who left is not blocked: $(ovr DAVE1)"
sqlite3 reg.db "SELECT actor||'|'||action||'|'||target||'|'||detail FROM audit WHERE target='DAVE1' AND action='device.block'" |
  eg_has "directory|device.block|DAVE1|directory: user dave is no longer in the directory" || eg_fail "no audit of the sync's block"
[ "$(ovr ALICE1)" = none ] || eg_fail "alice's device changed: $(ovr ALICE1)"
eg_pass "periodic sync: devices of the disabled user and of the user who left are blocked (audited, actor directory); others untouched"
for _ in $(seq 1 50); do grep -rlq "^X-Envelope-To: carol@example.com" "$TMP/mail/new" 2>/dev/null && break; sleep 0.2; done
grep -rl "^X-Envelope-To: carol@example.com" "$TMP/mail/new" 2>/dev/null | head -1 | xargs -r cat >carol.eml
grep -q "^Content-Language: en" carol.eml && grep -q "^Subject: easgate: your device CAROL1 is blocked" carol.eml ||
  eg_fail "carol (no invitation) got no mail at the directory's address: $(cat carol.eml)"
eg_pass "the blocked user without an invitation is mailed at the directory's address"

# ---- outage: cached answers up to max_stale, then refusal; sync leaves devices alone ----
[ "$(invite alice)" = 201 ] || eg_fail "alice not invited before the outage: $(cat inv.json)"
t0=$(date +%s)
kill "$slapd_pid"; wait "$slapd_pid" 2>/dev/null
sleep 1.2 # past cache_ttl: the next lookup asks the server, which is gone
[ "$(invite alice)" = 201 ] || eg_fail "alice's cached answer not used in the outage: $(cat inv.json)"
[ "$(invite erin)" = 503 ] && grep -q "directory cannot say" inv.json || eg_fail "erin (never looked up) not refused in the outage: $(cat inv.json)"
while [ $(($(date +%s) - t0)) -le 6 ]; do sleep 0.5; done
[ "$(invite alice)" = 503 ] || eg_fail "a cached answer older than max_stale was used: $(cat inv.json)"
grep -q "answering for 'alice' from the cache" "$TMP/core.log" || eg_fail "no warning about the stale answer"
[ "$(ovr ALICE1)" = none ] || eg_fail "the outage blocked alice's device: $(ovr ALICE1)"
grep -q "not answered" "$TMP/core.log" || eg_fail "the sync did not report unanswered users"
eg_pass "outage: cached answer served (and logged) within max_stale, refused after; an unknown user refused (503); the sync blocks nobody"
slapd_up
for _ in $(seq 1 30); do [ "$(invite erin)" = 201 ] && break; sleep 0.3; done
[ "$(python3 -c 'import json,sys; print(json.load(open("inv.json")).get("user"))')" = erin ] || eg_fail "directory back, erin still refused: $(cat inv.json)"
eg_pass "the directory back: lookups answered again at once"
eg_stop_clean core
