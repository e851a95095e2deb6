#!/usr/bin/env bash
# The admin console at scale (issue 18): time to first paint and to an
# interactive device list in headless chromium, on a registry of a million
# devices, LOADS times (10 by default); prints each load and the medians.
#
#   bench/console/run.sh BUILD OUT [SEED_DB]
#
#   BUILD    the build directory (easgate, coreseed)
#   OUT      where the work copy, logs and results go
#   SEED_DB  a registry to copy (never changed); without it one is made in
#            OUT/seed.db from build/coreseed (DEVICES, 1000000 by default)
#            through `easgate admin devices import`, and kept for next time
#
# Needs redis-server, node, chromium and tests/browser/node_modules
# (scripts/bootstrap).
set -euo pipefail
BUILD=$(cd "${1:?build dir}" && pwd)
OUT=$(mkdir -p "${2:?output dir}" && cd "$2" && pwd)
SEED=${3:-$OUT/seed.db}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
DEVICES=${DEVICES:-1000000}
LOADS=${LOADS:-10}
W=$OUT/work
rm -rf "$W"
mkdir -p "$W"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 3000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench/console: nothing listens on $1" >&2
  exit 1
}

bash "$SRC/certs/mkcerts" "$W/certs" >/dev/null
printf 'unknown_devices: allow\n' >"$W/policy.yaml"
RPORT=$(port)
CPORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$W" \
  --daemonize no >"$W/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$RPORT"
cat >"$W/easgate.yaml" <<EOF
policy: policy.yaml
log: { error: core.log, level: info }
redis:
  url: redis://127.0.0.1:$RPORT/0
core:
  database: registry.db
  tick: 1s
  listen: 127.0.0.1:$CPORT
  tls: { cert: certs/proxy.crt, key: certs/proxy.key }
EOF
C=(-c "$W/easgate.yaml")
EG=$BUILD/easgate
PW='measure the pages 1'
start_core() {
  "$EG" core "${C[@]}" >>"$W/core.stderr" 2>&1 &
  CORE=$!
  PIDS+=($CORE)
  wait_port "$CPORT"
}
if [ -f "$SEED" ]; then
  cp "$SEED" "$W/registry.db"
  echo "$PW" | "$EG" core init-admin "${C[@]}" --user bench >/dev/null 2>&1 || true
else
  echo "$PW" | "$EG" core init-admin "${C[@]}" --user bench >/dev/null
fi
TOKEN=$("$EG" core token "${C[@]}" --user bench --role admin --name bench)
start_core
if [ ! -f "$SEED" ]; then
  echo "bench/console: seeding $DEVICES devices (once; kept in $SEED)" >&2
  "$BUILD/coreseed" --devices "$DEVICES" >"$W/fleet.jsonl"
  t0=$(date +%s)
  "$EG" admin --url "https://127.0.0.1:$CPORT" --cacert "$W/certs/ca.crt" --token "$TOKEN" devices import \
    "$W/fleet.jsonl" --create-users >"$W/import.log" 2>&1 || { tail "$W/import.log" >&2; exit 1; }
  echo "bench/console: seeded in $(( $(date +%s) - t0 )) s" >&2
  kill "$CORE"
  wait "$CORE" 2>/dev/null || true
  sqlite3 "$W/registry.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1 || true
  cp "$W/registry.db" "$SEED"
  start_core
fi
EG_URL="https://127.0.0.1:$CPORT" EG_ADMIN=bench EG_ADMIN_PW=$PW LOADS=$LOADS \
  node "$HERE/measure.mjs" | tee "$OUT/results.txt"
