#!/usr/bin/env bash
# core.directory against a slapd that answers awkwardly: a referral object
# under base_dn (continuation references) is never followed, a user found
# here is still found, one not found here is "cannot say" (never "no such
# user": the sync would block a user who did not leave); a base_dn that is
# itself a referral is an error naming it; a search matching more entries
# than max_results stops at the server's size limit with an error; a
# server that accepts and never answers costs one timeout, with an error;
# a group invitation skips a member whose directory address is malformed,
# saying so.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
[ -x /usr/sbin/slapd ] && command -v slapadd >/dev/null && command -v ldapadd >/dev/null || exit 77
CERTS=$(eg_certs)
DATA="$SRC/tests/data/ldap"
cd "$TMP" || exit 1
LDAP=$(eg_port)
LDAPS=$(eg_port)
ELSEWHERE=$(eg_port)
SILENT=$(eg_port)
mkdir ldapdb
sed -e "s#@TMP@#$TMP#g; s#@CERTS@#$CERTS#g; s#@DATA@#$DATA#g" "$DATA/slapd.conf.in" >slapd.conf
{
  cat "$DATA/directory.ldif"
  # sixty entries sharing one address (a shared mailbox copied onto them)
  # frank's address is malformed; group oddmail holds him and alice
  printf '\ndn: uid=frank,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: easgateTestADUser\nuid: frank\ncn: frank\nsn: frank\nmail: frank at example.com\nsAMAccountName: frank\nuserAccountControl: 512\n'
  printf '\ndn: cn=oddmail,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: oddmail\nmember: uid=frank,ou=people,dc=example,dc=com\nmember: uid=alice,ou=people,dc=example,dc=com\n'
  for i in $(seq -w 1 60); do
    printf '\ndn: uid=bulk%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bulk%s\ncn: bulk %s\nsn: bulk\nmail: everyone@example.com\n' "$i" "$i" "$i"
  done
} >data.ldif
slapadd -f slapd.conf -l data.ldif >slapadd.log 2>&1 || eg_fail "slapadd: $(cat slapadd.log)"
eg_start slapd /usr/sbin/slapd -h "ldap://127.0.0.1:$LDAP/ ldaps://127.0.0.1:$LDAPS/" -f slapd.conf -d 0
eg_wait_port "$LDAP"
# the referral's target: a listener that records any connection (none may come)
eg_start elsewhere python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); open(sys.argv[2], "a").write("connected\n"); c.close()
' "$ELSEWHERE" "$TMP/elsewhere.log"
# a server that accepts and never says a word
eg_start silent python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$SILENT"
eg_wait_port "$ELSEWHERE"
eg_wait_port "$SILENT"
sleep 0.5
: >elsewhere.log # eg_wait_port's own connection
ldapadd -M -x -H "ldap://127.0.0.1:$LDAP" -D cn=admin,dc=example,dc=com -w admin-secret-1 >ref.log 2>&1 <<LDIF ||
dn: ou=partner,dc=example,dc=com
objectClass: referral
objectClass: extensibleObject
ou: partner
ref: ldap://127.0.0.1:$ELSEWHERE/ou=partner,dc=example,dc=com
LDIF
  eg_fail "ldapadd the referral: $(cat ref.log)"
printf 'reader-secret-1\n' >bind.pw
dircfg() { # URL BASE [extra]
  cat <<YAML
core:
  database: reg.db
  directory:
    url: $1
    ca_file: $CERTS/ca.crt
    bind_dn: cn=reader,dc=example,dc=com
    bind_password_file: bind.pw
    base_dn: $2
    user_filter: (objectClass=inetOrgPerson)
    groups: member
    group_filter: (objectClass=groupOfNames)
    max_results: 5
    timeout: 1s
YAML
}
dircfg "ldap://127.0.0.1:$LDAP" dc=example,dc=com >dir.yaml
dircfg "ldap://127.0.0.1:$LDAP" ou=partner,dc=example,dc=com >partner.yaml
dircfg "ldap://127.0.0.1:$SILENT" dc=example,dc=com >silent.yaml
lookup() { timeout 30 "$EG" core directory lookup "$1" -c "$2"; }

# ---- referrals ----
lookup alice dir.yaml >a.json 2>a.err || eg_fail "alice with a referral beside her: $(cat a.err)"
grep -q '"uid=alice,ou=people,dc=example,dc=com"' a.json || eg_fail "alice: $(cat a.json)"
rc=0; lookup nobody dir.yaml >n.out 2>n.err || rc=$?
[ "$rc" = 1 ] && grep -q "'nobody' is not under 'dc=example,dc=com' on this server, and the search was referred to another (not followed): the directory cannot say" n.err ||
  eg_fail "a user not found here with a referral: exit $rc (3 would be 'no such user'): $(cat n.err)"
rc=0; lookup alice partner.yaml >p.out 2>p.err || rc=$?
[ "$rc" = 1 ] && grep -q "'ou=partner,dc=example,dc=com' is answered with a referral (not followed)" p.err ||
  eg_fail "base_dn is a referral: exit $rc, $(cat p.err)"
[ ! -s elsewhere.log ] || eg_fail "a referral was followed to 127.0.0.1:$ELSEWHERE"
eg_pass "referrals: never followed; a user found here is found, one not found here is 'cannot say' (exit 1, not 3), a base that is a referral is an error naming it"

# ---- more entries than max_results: the server's size limit ----
rc=0; lookup everyone@example.com dir.yaml >e.out 2>e.err || rc=$?
[ "$rc" = 1 ] && grep -q "more than 5 entries match .*everyone@example.com.* under 'dc=example,dc=com' (max_results)" e.err ||
  eg_fail "sixty entries for one address: exit $rc, $(cat e.err)"
eg_pass "a search matching sixty entries stops at max_results (5) with an error, not a truncated answer"

# ---- a server that never answers: one timeout, then an error ----
t0=$(date +%s%N)
rc=0; lookup alice silent.yaml >s.out 2>s.err || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] && [ -s s.err ] || eg_fail "a silent server: exit $rc, $(cat s.err)"
[ "$ms" -lt 10000 ] || eg_fail "a silent server held the lookup ${ms} ms (timeout 1s)"
echo "silent server: ${ms} ms: $(cat s.err)"
eg_pass "a server that accepts and never answers: the lookup fails after its timeout (${ms} ms) with an error"

# ---- a group member with a malformed address: skipped, with the reason ----
ENR=$(eg_port)
NOSMTP=$(eg_port)
{
  dircfg "ldap://127.0.0.1:$LDAP" dc=example,dc=com
  cat <<YAML
  notify:
    templates: $SRC/conf/notify
    smtp: { url: "smtp://127.0.0.1:$NOSMTP", from: gate@example.com, ca_file: $CERTS/ca.crt }
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  listen: 127.0.0.1:$ENR
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
} >inv.yaml
"$EG" core init-ca -c inv.yaml >init.log 2>&1 || eg_fail "init-ca: $(cat init.log)"
echo 'correct horse battery' | "$EG" core init-admin -c inv.yaml --user root >/dev/null 2>&1 || eg_fail "init-admin"
ADMIN=$("$EG" core token -c inv.yaml --user root --role admin 2>/dev/null) || eg_fail "no admin token"
eg_stack core inv.yaml
code=$(curl -s --max-time 20 --cacert "$CERTS/ca.crt" -o ginv.json -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
  --data-binary '{"group":"oddmail","mail":true}' "https://127.0.0.1:$ENR/enroll/v1/invitations")
[ "$code" = 201 ] || eg_fail "group oddmail: $code $(cat ginv.json)"
python3 - <<'PY' || eg_fail "group oddmail answer: $(cat ginv.json)"
import json
d = json.load(open("ginv.json"))
assert [x["user"] for x in d["invited"]] == ["alice"], d
assert d["skipped"] == [{"user": "frank", "why": "the directory's e-mail address is not one a mail can go to"}], d
PY
[ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target LIKE 'frank%'")" = 0 ] || eg_fail "a mail to frank's malformed address was queued"
eg_pass "a group invitation skips the member whose directory address is malformed, saying so, and invites the others"
eg_stop_clean core
