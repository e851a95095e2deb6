#!/usr/bin/env bash
# The core against an attacker with raw clients (issue 19, point 4): each
# section is one attack, written to fail before its defence existed.
#   1. file modes: registry.db, -wal and -shm are 0600 under umask 022;
#   2. an invitation's "expires" of 106751991167d (now + it overflows int64:
#      a UBSan abort, or "never" in the plain build) is a 400.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server curl python3 openssl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }

CERTS=$(eg_certs)
cport=$(eg_port)
eport=$(eg_port)
eg_redis
echo 'unknown_devices: allow' >"$TMP/policy.yaml"
eg_conf -w 1 - <<EOF
core:
  database: registry.db
  listen: 127.0.0.1:$cport
enroll:
  public_host: mail.example.com
  url: https://enroll.example.com
  listen: 127.0.0.1:$eport
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
EOF
C=(-c "$TMP/easgate.yaml")
EG="$BUILD/easgate"
URL="http://127.0.0.1:$cport"
EURL="https://127.0.0.1:$eport"
"$EG" core init-ca "${C[@]}" >"$TMP/init-ca.log" 2>&1 || eg_fail "init-ca failed"

# 1. File modes, whatever umask the service manager left.
umask 022
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null ||
  eg_fail "init-admin failed"
ADMIN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 50); do [ -e "$TMP/registry.db-shm" ] && break; sleep 0.1; done
for f in registry.db registry.db-wal registry.db-shm; do
  [ -e "$TMP/$f" ] || eg_fail "$f does not exist while the core runs"
  m=$(stat -c %a "$TMP/$f")
  [ "$m" = 600 ] || eg_fail "$f has mode $m, not 600"
done
eg_pass "registry.db, -wal and -shm are 0600 under umask 022"

# 2. An invitation whose deadline is past the end of int64 time.
# eapi TOKEN METHOD PATH [BODY]: prints "STATUS BODY" from the enrollment server
eapi() {
  local tok=$1 m=$2 p=$3; shift 3
  local args=(-s --max-time 10 --cacert "$CERTS/ca.crt" -o "$TMP/eapi.out" -w '%{http_code}' -X "$m"
              -H "Authorization: Bearer $tok")
  [ $# -gt 0 ] && args+=(-H 'Content-Type: application/json' --data-binary "$1")
  local st; st=$(curl "${args[@]}" "$EURL$p")
  echo "$st $(cat "$TMP/eapi.out")"
}
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"106751991167d"}')
[[ $r == 400* ]] || eg_fail "an expires past the end of time: $r"
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"3651d"}')
[[ $r == 400* ]] || eg_fail "an expires over ten years: $r"
r=$(eapi "$ADMIN" POST /enroll/v1/invitations '{"email":"a@example.com","expires":"30d"}')
[[ $r == 201* ]] || eg_fail "an expires of 30d: $r"
kill -0 "$core_pid" || eg_fail "the core died"
eg_pass "expires: past the end of time and over ten years are 400, 30d is 201"
