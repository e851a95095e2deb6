# test_admin_lifecycle: admin accounts and tokens over the API and `easgate
# admin`: list, create (weak password and duplicates refused), disable and
# enable (a disabled account's sessions and tokens stop at once), reset
# another's password (admin role; its sessions end), change one's own (old
# password required), delete (tokens revoked), the last enabled admin kept;
# tokens listed with their names and last use, one revoked by its id; a
# viewer may do none of it but change its own password; every change is in
# the audit log. About 15 s (each password check costs an argon2 hash).
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
D=$TMP/site
PW=correct-horse-battery
echo "$PW" | "$EG" init --dir "$D" --upstream http://127.0.0.1:9 --public-host localhost \
  --admin root --listen "127.0.0.1:$(eg_port)" >"$TMP/init.log" 2>&1 || eg_fail "init: $(cat "$TMP/init.log")"
P_CORE=$(eg_port)
sed -i -e "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" -e "s/0.0.0.0:8444/127.0.0.1:$(eg_port)/" \
  -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$(eg_port)/0#" "$D/easgate.yaml"
sed -i "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" "$D/admin.yaml"
export EASGATE_ADMIN_CONFIG=$D/admin.yaml
unset EASGATE_URL EASGATE_TOKEN EASGATE_CACERT
eg_stack core "$D/easgate.yaml"

admin() { "$EG" admin "$@"; }
# run_rc WANT CMD...: exit status WANT, output in $TMP/out and $TMP/err
run_rc() {
  local want=$1 rc=0; shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want" ] || eg_fail "'$*': exit $rc, want $want: $(cat "$TMP/err")"
}
ROOT=$(echo "$PW" | admin login --user root) || eg_fail "root login"
export EASGATE_TOKEN=$ROOT

printf 'fine-admin-password-1\n' | admin admins create bob >/dev/null || eg_fail "create bob"
printf 'viewer-password-1\n' | admin admins create vera --role viewer >/dev/null || eg_fail "create vera"
run_rc 1 sh -c 'printf "short\n" | "$0" admin admins create carl' "$EG"
grep -q "12 characters" "$TMP/err" || eg_fail "weak password: $(cat "$TMP/err")"
run_rc 1 sh -c 'printf "another-long-password\n" | "$0" admin admins create bob' "$EG"
grep -q "exists already" "$TMP/err" || eg_fail "duplicate: $(cat "$TMP/err")"
run_rc 1 sh -c 'printf "another-long-password\n" | "$0" admin admins create dave --role device' "$EG"
grep -q "role must be admin or viewer" "$TMP/err" || eg_fail "device role: $(cat "$TMP/err")"
admin admins list >"$TMP/list" || eg_fail "list"
grep -Eq '^bob +admin .* enabled$' "$TMP/list" && grep -Eq '^vera +viewer .* enabled$' "$TMP/list" &&
  grep -Eq '^root +admin' "$TMP/list" || eg_fail "admins list: $(cat "$TMP/list")"
eg_pass "admins: create (weak, duplicate and device role refused) and list"

BOB=$(printf 'fine-admin-password-1\n' | admin login --user bob) || eg_fail "bob login"
BOBTOK=$(EASGATE_TOKEN=$BOB admin token new --role viewer --name bobs-script 2>/dev/null) || eg_fail "bob mints"
EASGATE_TOKEN=$BOBTOK admin whoami >/dev/null || eg_fail "bob's token"
admin admins disable bob >/dev/null || eg_fail "disable bob"
run_rc 1 env EASGATE_TOKEN="$BOB" "$EG" admin whoami
run_rc 1 env EASGATE_TOKEN="$BOBTOK" "$EG" admin whoami
run_rc 1 sh -c 'printf "fine-admin-password-1\n" | "$0" admin login --user bob' "$EG"
grep -Eq '^bob +admin .* disabled$' <<<"$(admin admins list)" || eg_fail "bob not shown disabled"
admin admins enable bob >/dev/null || eg_fail "enable bob"
EASGATE_TOKEN=$BOBTOK admin whoami >/dev/null || eg_fail "bob's token after enable"
eg_pass "disable stops the account's sessions, tokens and logins at once; enable restores them"

BOB=$(printf 'fine-admin-password-1\n' | admin login --user bob) || eg_fail "bob login 2"
printf 'second-pass-for-b\n' | admin admins reset-password bob >/dev/null || eg_fail "reset bob"
run_rc 1 env EASGATE_TOKEN="$BOB" "$EG" admin whoami
BOB=$(printf 'second-pass-for-b\n' | admin login --user bob) || eg_fail "bob login after reset"
run_rc 1 sh -c 'printf "wrong-old-password\nthird-pass-for-b\n" | EASGATE_TOKEN=$1 "$0" admin password' "$EG" "$BOB"
grep -q "the old password is wrong" "$TMP/err" || eg_fail "wrong old password: $(cat "$TMP/err")"
run_rc 1 sh -c 'printf "second-pass-for-b\nbob\n" | EASGATE_TOKEN=$1 "$0" admin password' "$EG" "$BOB"
grep -q "12 characters" "$TMP/err" || eg_fail "weak new password: $(cat "$TMP/err")"
run_rc 0 sh -c 'printf "second-pass-for-b\nthird-pass-for-b\n" | EASGATE_TOKEN=$1 "$0" admin password' "$EG" "$BOB"
run_rc 1 env EASGATE_TOKEN="$BOB" "$EG" admin whoami
printf 'third-pass-for-b\n' | admin login --user bob >/dev/null || eg_fail "bob's changed password"
VERA=$(printf 'viewer-password-1\n' | admin login --user vera) || eg_fail "vera login"
run_rc 1 env EASGATE_TOKEN="$VERA" "$EG" admin admins list
grep -q "HTTP 403" "$TMP/err" || eg_fail "viewer lists admins: $(cat "$TMP/err")"
run_rc 1 sh -c 'printf "x-long-enough-pass\n" | EASGATE_TOKEN=$1 "$0" admin admins reset-password bob' "$EG" "$VERA"
run_rc 0 sh -c 'printf "viewer-password-1\nviewer-password-2\n" | EASGATE_TOKEN=$1 "$0" admin password' "$EG" "$VERA"
eg_pass "reset (admin only, sessions end), own change (old password required, checked, sessions end)"

admin token list >"$TMP/tokens" || eg_fail "token list"
grep -Eq "^[0-9]+ +bob +viewer +bobs-script .* active$" "$TMP/tokens" || eg_fail "token list: $(cat "$TMP/tokens")"
python3 - "$P_CORE" "$D/tls/admin.crt" "$ROOT" <<'PY' || eg_fail "token JSON lacks last use"
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(f"https://127.0.0.1:{sys.argv[1]}/api/v1/tokens?account=bob",
                             headers={"Authorization": "Bearer " + sys.argv[3]})
toks = json.load(urllib.request.urlopen(req, context=ctx))["tokens"]
assert len(toks) == 1 and toks[0]["name"] == "bobs-script", toks
assert toks[0]["last_used"] > toks[0]["created"] - 1000 and toks[0]["last_used"] > 0, toks
PY
# One token revoked by its id: it stops at once, the list says so.
CITOK=$(admin token new --role viewer --name ci-job 2>/dev/null) || eg_fail "mint ci-job"
EASGATE_TOKEN=$CITOK admin whoami >/dev/null || eg_fail "ci-job's token"
id=$(awk '$4 == "ci-job" {print $1}' <<<"$(admin token list)")
[ -n "$id" ] || eg_fail "ci-job not in the token list"
admin token revoke "$id" >/dev/null || eg_fail "token revoke $id"
run_rc 1 env EASGATE_TOKEN="$CITOK" "$EG" admin whoami
grep -Eq "^$id +root +viewer +ci-job .* revoked$" <<<"$(admin token list)" || eg_fail "ci-job not shown revoked"
run_rc 1 "$EG" admin token revoke 999999
admin admins delete bob >/dev/null || eg_fail "delete bob"
run_rc 1 env EASGATE_TOKEN="$BOBTOK" "$EG" admin whoami
grep -Eq "bobs-script .* revoked$" <<<"$(admin token list)" || eg_fail "bob's token not revoked"
run_rc 1 "$EG" admin admins delete bob
grep -q "no account 'bob'" "$TMP/err" || eg_fail "delete twice: $(cat "$TMP/err")"
eg_pass "tokens listed with name and last use; one revoked by id; delete revokes the account's tokens"

run_rc 1 "$EG" admin admins disable root
grep -q "last enabled admin" "$TMP/err" || eg_fail "disable the last admin: $(cat "$TMP/err")"
run_rc 1 "$EG" admin admins delete root
grep -q "last enabled admin" "$TMP/err" || eg_fail "delete the last admin: $(cat "$TMP/err")"
eg_pass "the last enabled admin can be neither disabled nor deleted"

run_rc 2 "$EG" admin admins create
run_rc 2 "$EG" admin admins frob bob
run_rc 1 sh -c '"$0" admin password </dev/null' "$EG"
run_rc 1 sh -c '"$0" admin admins reset-password root </dev/null' "$EG"
eg_pass "bad input: usage (exit 2) and no password (exit 1)"

# admin.yaml: bad files say where; options win over the environment, which wins over the file.
run_rc 2 env EASGATE_ADMIN_CONFIG="$TMP/none.yaml" "$EG" admin whoami
grep -q "EASGATE_ADMIN_CONFIG: .*none.yaml: cannot open" "$TMP/err" || eg_fail "missing admin.yaml: $(cat "$TMP/err")"
printf 'ulr: https://127.0.0.1:1\n' >"$TMP/typo.yaml"
run_rc 2 env EASGATE_ADMIN_CONFIG="$TMP/typo.yaml" "$EG" admin whoami
grep -q "typo.yaml:1:1: unknown key 'ulr' (did you mean 'url'?)" "$TMP/err" || eg_fail "typo: $(cat "$TMP/err")"
printf -- '- a list\n' >"$TMP/list.yaml"
run_rc 2 env EASGATE_ADMIN_CONFIG="$TMP/list.yaml" "$EG" admin whoami
run_rc 1 env EASGATE_URL="https://127.0.0.1:$(eg_port)" "$EG" admin whoami
run_rc 0 env EASGATE_URL="https://127.0.0.1:$(eg_port)" "$EG" admin --url "https://127.0.0.1:$P_CORE" whoami
run_rc 1 env EASGATE_CACERT="$D/tls/server.crt" "$EG" admin whoami
grep -qi "certificate" "$TMP/err" || eg_fail "EASGATE_CACERT not used: $(cat "$TMP/err")"
eg_pass "admin.yaml: a missing or misspelt file is an error with its position; options > environment > file"

admin audit --limit 100 >"$TMP/audit" || eg_fail "audit"
for a in account.create account.disable account.enable account.password-reset \
         account.password-change account.password-change-failed account.delete token.revoke; do
  grep -q " $a " "$TMP/audit" || eg_fail "audit lacks $a: $(cat "$TMP/audit")"
done
eg_stop_clean core
eg_pass "every change is in the audit log"
