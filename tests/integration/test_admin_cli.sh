#!/usr/bin/env bash
# `easgate admin` and `easgate core init-admin|token` without Redis or a
# proxy: exit codes (0 done, 1 refused/unreachable, 2 usage), readable
# errors, --token-file, EASGATE_URL/EASGATE_TOKEN, plain HTTP only on
# loopback, core.tls checked at start, pagination cursor.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }
EG="$BUILD/easgate"
cport=$(eg_port)

cat >"$TMP/easgate.yaml" <<EOF
log: { error: "-", level: info }
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")

# usage errors are 2, with no token too
rc=0; "$EG" admin 2>/dev/null || rc=$?; [ $rc -eq 2 ] || eg_fail "no command: exit $rc"
rc=0; "$EG" admin --url "http://127.0.0.1:$cport" devices list 2>"$TMP/err" || rc=$?
[ $rc -eq 2 ] && grep -q "no token" "$TMP/err" || eg_fail "no token: exit $rc, $(cat "$TMP/err")"
rc=0; "$EG" core token "${C[@]}" 2>/dev/null || rc=$?; [ $rc -eq 2 ] || eg_fail "token without --user: exit $rc"
rc=0; "$EG" core token "${C[@]}" --user ghost 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "no account 'ghost'" "$TMP/err" || eg_fail "token for a missing account: $rc"
rc=0; echo 'aaaaaaaaaaaaaaaaaaaa' | "$EG" core init-admin "${C[@]}" --user root 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "different" "$TMP/err" || eg_fail "a repetitive password was accepted"
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null
rc=0; echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user ROOT 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "exists" "$TMP/err" || eg_fail "a second root (case-insensitive) was created"
"$EG" core token "${C[@]}" --user root >"$TMP/token" 2>/dev/null
for i in $(seq 0 11); do "$EG" core device add "DEV$i" "${C[@]}" --user bob >/dev/null; done

# unreachable: 1 and a message
rc=0; "$EG" admin --url "http://127.0.0.1:$cport" --token-file "$TMP/token" users 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -qi "connect" "$TMP/err" || eg_fail "unreachable API: exit $rc, $(cat "$TMP/err")"

eg_stack core "$TMP/easgate.yaml"
export EASGATE_URL="http://127.0.0.1:$cport" EASGATE_TOKEN
EASGATE_TOKEN=$(cat "$TMP/token")
"$EG" admin whoami | eg_has "^root (admin)$" || eg_fail "whoami via the environment"
"$EG" admin devices list --limit 5 >"$TMP/out" 2>"$TMP/err"
[ "$(wc -l <"$TMP/out")" -eq 6 ] || eg_fail "5 rows and a header expected: $(cat "$TMP/out")"
grep -q "^more: --after DEV2$" "$TMP/err" || eg_fail "no cursor for the next page: $(cat "$TMP/err")"
"$EG" admin devices list --limit 5 --after DEV2 | eg_has "^DEV3 " || eg_fail "second page"
rc=0; "$EG" admin devices show NOPE 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "no device NOPE (HTTP 404)" "$TMP/err" || eg_fail "show of a missing device: $rc"
rc=0; "$EG" admin --token egt_wrong users 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "HTTP 401" "$TMP/err" || eg_fail "a wrong token: $rc"
rc=0; "$EG" admin checkin DEV1 --jailbroken maybe 2>/dev/null || rc=$?; [ $rc -eq 2 ] || eg_fail "bad --jailbroken: $rc"
"$EG" admin devices manage DEV1 --user bob | eg_has "^DEV1: " || eg_fail "manage"
"$EG" admin --json devices show DEV1 | python3 -c 'import json,sys; assert json.load(sys.stdin)["device"]["managed"] is True' ||
  eg_fail "--json show"
echo 'correct horse battery' | "$EG" admin login --user root >"$TMP/session" || eg_fail "login"
grep -q '^egs_' "$TMP/session" || eg_fail "login printed no session token"
rc=0; echo 'wrong password here' | "$EG" admin login --user root 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "wrong user name or password" "$TMP/err" || eg_fail "bad login: $rc"
"$EG" admin audit | eg_has "login-failed" || eg_fail "a failed login is not audited"
kill -TERM "$core_pid"; wait "$core_pid" 2>/dev/null || true

# plain HTTP off loopback and bad TLS files are refused at start
sed -i "s/listen: 127.0.0.1:$cport/listen: 0.0.0.0:$cport/" "$TMP/easgate.yaml"
rc=0; timeout 20 "$EG" core "${C[@]}" >"$TMP/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "give core.tls" "$TMP/out" || eg_fail "plain HTTP on 0.0.0.0 accepted: $rc"
printf '  tls: { cert: missing.crt, key: missing.key }\n' >>"$TMP/easgate.yaml"
rc=0; timeout 20 "$EG" core "${C[@]}" >"$TMP/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "core.tls" "$TMP/out" || eg_fail "missing TLS files accepted: $rc $(cat "$TMP/out")"
eg_pass "easgate admin / init-admin / token: exit codes, messages, env and token file, paging, login, start checks"
