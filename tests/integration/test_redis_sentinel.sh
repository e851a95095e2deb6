#!/usr/bin/env bash
# Sentinel failover under the proxy: two redis-servers (master + replica) and
# one redis-sentinel. The master is killed while a known device keeps making
# requests: every request passes (cached state), the proxy follows the new
# master without a restart, and a block written to the new master cuts the
# device off within 1 s. Skips without redis-sentinel.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-sentinel redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

lport=$(eg_port); aport=$(eg_port)
eg_redis redis_a
eg_redis redis_b --replicaof 127.0.0.1 "$redis_a_port"
eg_sentinel egm "$redis_a_port"
for _ in $(seq 150); do
  redis-cli -p "$sentinel_port" SENTINEL replicas egm 2>/dev/null | eg_has "$redis_b_port" && break
  sleep 0.1
done
redis-cli -p "$sentinel_port" SENTINEL replicas egm | eg_has "$redis_b_port" || eg_fail "sentinel did not find the replica"
# The Sentinel lists a replica still in its first sync; WAIT below needs it online.
online() { redis-cli -p "$redis_a_port" INFO replication | eg_has "port=$redis_b_port,state=online"; }
for _ in $(seq 150); do online && break; sleep 0.1; done
online || eg_fail "the replica did not come online"

eg_exsim
cat >"$TMP/policy.yaml" <<EOF
unknown_devices: block
user_agents: { allow: [], block: [] }
EOF
cat >"$TMP/easgate.yaml" <<EOF
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$aport
  instances:
    - name: t
      listen: 127.0.0.1:$lport
      upstream:
        url: http://127.0.0.1:$exsim_port
policy: policy.yaml
log: { access: "off", error: "-", level: info }
redis:
  url: redis://127.0.0.1:1/0
  sentinel:
    master: egm
    nodes: ["127.0.0.1:$sentinel_port"]
  max_stale: 1h
EOF
eg_stack proxy "$TMP/easgate.yaml"
metrics() { curl -s --max-time 5 "http://127.0.0.1:$aport/metrics"; }
metrics | eg_has '^easgate_redis_connected' || { echo "proxy without state store"; exit 77; }
connected() { [ "$(metrics | awk '/^easgate_redis_connected /{print $2}')" = 2 ]; }
for _ in $(seq 100); do connected && break; sleep 0.1; done
connected || eg_fail "workers did not connect to the master Sentinel named"

EAS=/Microsoft-Server-ActiveSync
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/req" # FolderSync, SyncKey 0
fwd() { # DEVICE: 1 if Exchange saw the request
  curl -s --max-time 10 -D "$TMP/h" -o /dev/null -X POST -H 'MS-ASProtocolVersion: 14.1' \
    --data-binary @"$TMP/req" \
    "http://127.0.0.1:$lport$EAS?Cmd=FolderSync&User=alice&DeviceId=$1&DeviceType=iPhone" || true
  grep -qi '^X-Exsim-Cmd:' "$TMP/h" && echo 1 || echo 0
}
redis-cli -p "$redis_a_port" HSET easgate:dev:DEVS state allow user "" reason t version 1 >/dev/null
# Replication is asynchronous: make sure the replica has it before the master dies.
[ "$(redis-cli -p "$redis_a_port" WAIT 1 10000)" = 1 ] || eg_fail "the replica did not acknowledge the write"
# Each worker keeps its own cache and SO_REUSEPORT spreads connections at
# random: 30 requests warm both workers but with odds 2^-29, so this test
# does not lean on the process-wide fallback (test_redis_state covers it;
# before it existed, 4 requests here left a worker cold in 1 run of 8).
for _ in $(seq 30); do [ "$(fwd devs)" = 1 ] || eg_fail "DEVS does not pass before the failover"; done

kill "$redis_a_pid"
t0=$(date +%s%N)
n=0
while :; do
  [ "$(fwd devs)" = 1 ] || eg_fail "a request for the cached device failed during the failover"
  n=$((n + 1))
  [ "$(redis-cli -p "$redis_b_port" ROLE 2>/dev/null | head -1)" = master ] && connected && break
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 20000 ] || eg_fail "no failover within 20 s"
  sleep 0.1
done
echo "followed the failover in $(( ($(date +%s%N) - t0) / 1000000 )) ms; $n requests passed meanwhile"

redis-cli -p "$redis_b_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:DEVS state block version 2
PUBLISH easgate:changed "DEVS 2"
EXEC
EOF
t0=$(date +%s%N)
until [ "$(fwd devs)" = 0 ] && [ "$(fwd devs)" = 0 ] && [ "$(fwd devs)" = 0 ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ] || eg_fail "block on the new master not applied within 1 s"
  sleep 0.05
done
eg_pass "proxy followed a Sentinel failover; block on the new master applied"
