#!/bin/bash
# The writer's Redis connection (the API's changes) follows Sentinel like the run loop:
# an admin block through the API lands on the master the Sentinels name,
# and after a failover (the master killed, its replica promoted) the next
# block through the API lands on the new master without a restart.
# Skips without redis-sentinel.
source "$(dirname "$0")/lib.sh" "$@"
for t in redis-server redis-cli redis-sentinel curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
EG="$BUILD/easgate"

cport=$(eg_port)
eg_redis ra
eg_redis rb --replicaof 127.0.0.1 "$ra_port"
eg_sentinel m "$ra_port"
master_port() { redis-cli -p "$sentinel_port" --raw SENTINEL get-master-addr-by-name m 2>/dev/null | sed -n 2p; }
for _ in $(seq 150); do
  [ -n "$(redis-cli -p "$sentinel_port" --raw SENTINEL replicas m 2>/dev/null | head -1)" ] && break
  sleep 0.1
done

# redis.url points nowhere: every write must find its master through the Sentinel.
cat >"$TMP/easgate.yaml" <<EOF
log: { level: info }
redis:
  url: redis://127.0.0.1:1/0
  sentinel:
    master: m
    nodes: ["127.0.0.1:1", "127.0.0.1:$sentinel_port"]
core:
  database: registry.db
  tick: 200ms
  redis_retry: 300ms
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")
"$EG" core device add DEVA1 --user alice "${C[@]}" >/dev/null 2>&1 || eg_fail "device add failed"
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null 2>&1 ||
  eg_fail "init-admin failed"
TOKEN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
[[ $TOKEN == egt_* ]] || eg_fail "no token"

eg_stack core "$TMP/easgate.yaml"

# api ACTION ID: prints the HTTP status of POST /api/v1/devices/ID/ACTION
api() {
  curl -s --max-time 10 -o "$TMP/api.out" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary '{}' \
    "http://127.0.0.1:$cport/api/v1/devices/$2/$1"
}
state_on() { redis-cli -p "$1" HGET easgate:dev:DEVA1 state 2>/dev/null; }
wait_state() { # PORT STATE: up to 10 s
  for _ in $(seq 100); do [ "$(state_on "$1")" = "$2" ] && return 0; sleep 0.1; done
  return 1
}

[ "$(api allow DEVA1)" = 200 ] || eg_fail "allow through the API: $(cat "$TMP/api.out")"
wait_state "$ra_port" allow || eg_fail "the API did not write to the master the Sentinel names"

# Failover: kill the master, wait for the Sentinel to promote the replica.
kill "$ra_pid"
for _ in $(seq 200); do [ "$(master_port)" = "$rb_port" ] && break; sleep 0.1; done
[ "$(master_port)" = "$rb_port" ] || eg_fail "no failover within 20 s"

# The writer's push of the API's block to the dead master fails; the core
# must ask the Sentinel again (within core.redis_retry), resync into the new
# master, and the writer push what changed meanwhile (core/wr.h).
[ "$(api block DEVA1)" = 200 ] || eg_fail "block through the API: $(cat "$TMP/api.out")"
wait_state "$rb_port" block || eg_fail "the API's block did not reach the new master (state '$(state_on "$rb_port")')"
[ "$(grep -c "core: resync:" "$TMP/core.log")" -ge 2 ] ||
  eg_fail "no resync after the failover"
kill -0 "$core_pid" || eg_fail "the core died during the failover"
eg_pass "admin API follows Sentinel: writes to the named master, moves after a failover"
