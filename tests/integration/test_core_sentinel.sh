#!/bin/bash
# The core follows Redis Sentinel: it writes to the master the Sentinels
# name, and after a failover (the master killed, its replica promoted) both
# the running core (sightings, pushes) and the maintenance commands move to
# the new master without a restart. Skips without redis-sentinel.
source "$(dirname "$0")/lib.sh" "$@"
for t in redis-server redis-cli redis-sentinel; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
EG="$BUILD/easgate"

eg_redis ra
eg_redis rb --replicaof 127.0.0.1 "$ra_port"
eg_sentinel m "$ra_port"
master_port() { redis-cli -p "$sentinel_port" --raw SENTINEL get-master-addr-by-name m 2>/dev/null | sed -n 2p; }
for _ in $(seq 150); do
  [ -n "$(redis-cli -p "$sentinel_port" --raw SENTINEL replicas m 2>/dev/null | head -1)" ] && break
  sleep 0.1
done

# The core blocks devices nobody enrolled because the policy says so
# (without one it would allow them, as an empty policy does).
echo "unknown_devices: block" >"$TMP/policy.yaml"
cat >"$TMP/easgate.yaml" <<EOF
log: { level: info }
policy: policy.yaml
redis:
  url: redis://127.0.0.1:1/0
  sentinel:
    master: m
    nodes: ["127.0.0.1:1", "127.0.0.1:$sentinel_port"]
core:
  database: registry.db
  tick: 200ms
  redis_retry: 300ms
EOF
C=(-c "$TMP/easgate.yaml")

"$EG" core device add DEVS1 --user alice "${C[@]}" >/dev/null 2>&1 || eg_fail "device add failed"
[ "$(redis-cli -p "$ra_port" HGET easgate:dev:DEVS1 state)" = block ] ||
  eg_fail "the core did not write to the master the Sentinel names"

eg_stack core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start"

# Failover: kill the master, wait for the Sentinel to promote the replica.
kill "$ra_pid"
for _ in $(seq 200); do [ "$(master_port)" = "$rb_port" ] && break; sleep 0.1; done
[ "$(master_port)" = "$rb_port" ] || eg_fail "no failover within 20 s"

# The maintenance command asks the Sentinel again and writes to the new master.
"$EG" core device allow DEVS1 "${C[@]}" >/dev/null 2>&1 || eg_fail "allow after failover failed"
[ "$(redis-cli -p "$rb_port" HGET easgate:dev:DEVS1 state)" = allow ] || eg_fail "allow not on the new master"

# The running core: a sighting on the new master is consumed and pushed there
# (one with auth: only those register a device).
ms=$(($(date +%s) * 1000))
redis-cli -p "$rb_port" XADD easgate:sightings '*' kind unknown-device device DEVS2 instance p/1 \
  time "$ms" user bob auth exchange >/dev/null
for _ in $(seq 100); do
  [ "$(redis-cli -p "$rb_port" HGET easgate:dev:DEVS2 state)" = block ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$rb_port" HGET easgate:dev:DEVS2 state)" = block ] ||
  eg_fail "the running core did not follow the failover"
kill -0 "$core_pid" || eg_fail "the core died during the failover"
eg_pass "core follows Sentinel: writes to the named master, moves after a failover"
