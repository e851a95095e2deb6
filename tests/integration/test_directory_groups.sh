#!/usr/bin/env bash
# device_rules with `groups` against a throwaway OpenLDAP slapd (the same
# directory as test_directory.sh: alice in sales < staff < all-staff, dave
# in sales, bob and the disabled carol in admins): the CLI decides with an
# inline lookup, the running core from its directory thread (nested
# groups); a user taken out of a group is decided again within cache_ttl;
# in an outage past max_stale the group's quarantine rule applies to every
# user it could concern (fail closed) and lifts when the directory is back;
# compliance.groups checks only the groups' users, and everybody when the
# directory cannot say; a policy with groups and no core.directory is
# refused at FILE:LINE:COL.
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
[ -x /usr/sbin/slapd ] && command -v slapadd >/dev/null && command -v ldapmodify >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
CERTS=$(eg_certs)
DATA="$SRC/tests/data/ldap"
cd "$TMP" || exit 1
LDAP=$(eg_port)
LDAPS=$(eg_port)
mkdir ldapdb
sed -e "s#@TMP@#$TMP#g; s#@CERTS@#$CERTS#g; s#@DATA@#$DATA#g" "$DATA/slapd.conf.in" >slapd.conf
slapadd -f slapd.conf -l "$DATA/directory.ldif" >slapadd.log 2>&1 || eg_fail "slapadd: $(cat slapadd.log)"
slapd_up() {
  eg_start slapd /usr/sbin/slapd -h "ldap://127.0.0.1:$LDAP/ ldaps://127.0.0.1:$LDAPS/" -f slapd.conf -d 0
  eg_wait_port "$LDAP"
}
slapd_up
printf 'reader-secret-1\n' >bind.pw
cat >policy.yaml <<'YAML'
unknown_devices: allow
device_rules:
  - match: { device_type: "iPhone", groups: [all-staff] }
    action: quarantine
compliance:
  groups: [admins]
  require_encryption: true
YAML
cat >easgate.yaml <<YAML
policy: policy.yaml
core:
  database: reg.db
  tick: 100ms
  directory:
    url: ldap://127.0.0.1:$LDAP
    ca_file: $CERTS/ca.crt
    bind_dn: cn=reader,dc=example,dc=com
    bind_password_file: bind.pw
    base_dn: dc=example,dc=com
    user_filter: (objectClass=inetOrgPerson)
    groups: member
    group_filter: (objectClass=groupOfNames)
    cache_ttl: 1s
    max_stale: 4s
    sync: 0
YAML

# ---- no directory: refused where groups is written ----
printf 'unknown_devices: allow\ncompliance:\n  groups: [admins]\n' >cpol.yaml
printf 'policy: cpol.yaml\ncore:\n  database: reg.db\n' >cnodir.yaml
rc=0; "$EG" check -c cnodir.yaml -q >chk.out 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "cpol.yaml:3:11: groups: .*core.directory.*remove compliance.groups" chk.out ||
  eg_fail "compliance.groups without core.directory: exit $rc, $(cat chk.out)"
printf 'policy: policy.yaml\ncore:\n  database: reg.db\n' >nodir.yaml
rc=0; "$EG" check -c nodir.yaml -q >chk.out 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "policy.yaml:3:45: groups: .*core.directory" chk.out ||
  eg_fail "groups without core.directory: exit $rc, $(cat chk.out)"
rc=0; "$EG" core device show X1 -c nodir.yaml >chk.out 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "policy.yaml:3:45: groups" chk.out || eg_fail "the core opened without a directory: exit $rc, $(cat chk.out)"
"$EG" check -c easgate.yaml -q >chk.out 2>&1 || eg_fail "check with the directory: $(cat chk.out)"
eg_pass "a group rule without core.directory is refused by check and the core at POLICY:LINE:COL"

# ---- the CLI decides with an inline lookup ----
st() { sqlite3 reg.db "SELECT state||' '||reason FROM devices WHERE device_id='$1'"; }
for d in ALICE1:alice DAVE1:dave BOB1:bob CAROL1:carol GHOST1:ghost; do
  "$EG" core device add "${d%%:*}" -c easgate.yaml --user "${d#*:}" --type iPhone >add.log 2>&1 || eg_fail "device add $d: $(cat add.log)"
done
# managed (enrolled) devices, for compliance.groups: erin is in no group, bob in admins
for d in ERINM:erin BOBM:bob; do
  "$EG" core device add "${d%%:*}" -c easgate.yaml --user "${d#*:}" --type Android >add.log 2>&1 || eg_fail "device add $d: $(cat add.log)"
  "$EG" core device manage "${d%%:*}" -c easgate.yaml --user "${d#*:}" >add.log 2>&1 || eg_fail "device manage $d: $(cat add.log)"
done
[ "$(st ERINM)" = "allow not-in-compliance-groups" ] || eg_fail "erin (not in admins) was checked: $(st ERINM)"
[ "$(st BOBM)" = "block encryption-unknown" ] || eg_fail "bob (admins) was not checked: $(st BOBM)"
eg_pass "compliance.groups: the checks hold bob (admins); erin, in no group, is exempt"
[ "$(st ALICE1)" = "quarantine rule:1" ] && [ "$(st DAVE1)" = "quarantine rule:1" ] ||
  eg_fail "members (nested) not quarantined by the CLI: alice $(st ALICE1), dave $(st DAVE1)"
[ "$(st BOB1)" = "allow unmanaged-allowed" ] || eg_fail "bob (admins) was held: $(st BOB1)"
[ "$(st CAROL1)" = "quarantine rule:1" ] && [ "$(st GHOST1)" = "quarantine rule:1" ] ||
  eg_fail "disabled / unknown users are not held (fail closed): carol $(st CAROL1), ghost $(st GHOST1)"
eg_pass "CLI: nested members quarantined by the group rule, a non-member allowed, a disabled and an unknown user held (fail closed)"

# ---- the running core: thread answers, group changes, outage ----
eg_start core "$EG" core -c easgate.yaml
wait_st() { # DEVICE WANT [tries]
  for _ in $(seq 1 "${3:-60}"); do [ "$(st "$1")" = "$2" ] && return 0; sleep 0.2; done
  return 1
}
sleep 1
# dave leaves sales: no longer in all-staff
ldapmodify -x -H "ldap://127.0.0.1:$LDAP" -D cn=admin,dc=example,dc=com -w admin-secret-1 >mod.log 2>&1 <<'LDIF' ||
dn: cn=sales,ou=groups,dc=example,dc=com
changetype: modify
delete: member
member: uid=dave,ou=people,dc=example,dc=com
LDIF
  eg_fail "ldapmodify: $(cat mod.log)"
wait_st DAVE1 "allow unmanaged-allowed" || eg_fail "dave, out of the group, is still held: $(st DAVE1)"
[ "$(st ALICE1)" = "quarantine rule:1" ] && [ "$(st BOB1)" = "allow unmanaged-allowed" ] ||
  eg_fail "others changed: alice $(st ALICE1), bob $(st BOB1)"
sqlite3 reg.db "SELECT detail FROM audit WHERE target='DAVE1' AND action='device.state'" |
  eg_has "^directory: quarantine (rule:1) -> allow" || eg_fail "no audit of the change: $(sqlite3 reg.db "SELECT * FROM audit WHERE target='DAVE1'")"
eg_pass "running core: a user taken out of a group is decided again within cache_ttl (audited, cause directory)"

t0=$(date +%s%N)
kill "$slapd_pid"; wait "$slapd_pid" 2>/dev/null
sleep 2
[ "$(st BOB1)" = "allow unmanaged-allowed" ] || eg_fail "bob held within max_stale: $(st BOB1)"
wait_st BOB1 "quarantine rule:1" 60 || eg_fail "outage past max_stale: the group rule did not fail closed for bob: $(st BOB1)"
# the last answer came up to cache_ttl (1s) before the stop: held after max_stale - cache_ttl at the earliest
held_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$held_ms" -ge 2800 ] || eg_fail "held ${held_ms} ms after the stop, before max_stale ran out"
[ "$(st DAVE1)" = "quarantine rule:1" ] || eg_fail "outage: dave not held: $(st DAVE1)"
wait_st ERINM "block encryption-unknown" 20 || eg_fail "outage: erin's device was not checked (fail closed): $(st ERINM)"
grep -q "groups of 'bob'" "$TMP/core.log" || eg_fail "the outage is not logged"
eg_pass "outage: answers served within max_stale, then the group's quarantine rule holds every user it could concern, compliance.groups checks everybody"
slapd_up
wait_st BOB1 "allow unmanaged-allowed" 60 || eg_fail "directory back, bob still held: $(st BOB1)"
wait_st DAVE1 "allow unmanaged-allowed" 60 || eg_fail "directory back, dave still held: $(st DAVE1)"
[ "$(st ALICE1)" = "quarantine rule:1" ] || eg_fail "alice: $(st ALICE1)"
wait_st ERINM "allow not-in-compliance-groups" 60 || eg_fail "directory back, erin still checked: $(st ERINM)"
[ "$(st BOBM)" = "block encryption-unknown" ] || eg_fail "bob: $(st BOBM)"
eg_pass "the directory back: non-members released within cache_ttl, members still held"
eg_stop_clean core
