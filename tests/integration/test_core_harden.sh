#!/usr/bin/env bash
# The core against an attacker with raw clients (issue 19, point 4): each
# section is one attack, written to fail before its defence existed.
#   1. file modes: registry.db, -wal and -shm are 0600 under umask 022.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server curl python3; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }

cport=$(eg_port)
eg_redis
echo 'unknown_devices: allow' >"$TMP/policy.yaml"
eg_conf -w 1 - <<EOF
core:
  database: registry.db
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")
EG="$BUILD/easgate"
URL="http://127.0.0.1:$cport"

# 1. File modes, whatever umask the service manager left.
umask 022
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null ||
  eg_fail "init-admin failed"
eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 50); do [ -e "$TMP/registry.db-shm" ] && break; sleep 0.1; done
for f in registry.db registry.db-wal registry.db-shm; do
  [ -e "$TMP/$f" ] || eg_fail "$f does not exist while the core runs"
  m=$(stat -c %a "$TMP/$f")
  [ "$m" = 600 ] || eg_fail "$f has mode $m, not 600"
done
eg_pass "registry.db, -wal and -shm are 0600 under umask 022"
