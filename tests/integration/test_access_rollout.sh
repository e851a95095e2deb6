#!/usr/bin/env bash
# Rollout day (issue 17's first report, docs/access-model.md "One source of
# truth"): with the shipped conf/policy-rollout.yaml an unenrolled phone
# syncs again and again, is never blocked, and the core records it as a
# device it discovered (unmanaged, state allow, reason unmanaged-allowed).
# Two layouts, with redis-server, exsim and build/easclient:
#   1. proxy and core on separate configurations, the core's written with
#      no policy: key at all (a core host set up before the policy): the
#      core applies the same defaults an empty policy gives the proxy
#      (unknown_devices: allow, unmanaged_devices follows it), not a block
#      of its own;
#   2. `easgate run` with one configuration naming the rollout policy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done
EG=$BUILD/easgate
cp "$SRC/conf/policy-rollout.yaml" "$TMP/policy.yaml"

eg_redis
eg_exsim
R() { redis-cli -p "$redis_port" "$@"; }
printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
# reaches DEVICE: a FolderSync 0 of the phone reaches Exchange
reaches() {
  "$BUILD/easclient" --url "http://127.0.0.1:$proxy_port" --user "$2" --device "$1" --type iPhone \
    --show-headers FolderSync "$TMP/fs.xml" 2>&1 | grep -qi '^X-Exsim-Cmd: FolderSync'
}
# syncs_all_day DEVICE USER CONF: the phone syncs ten times while the core
# meets it (its first answer from Exchange registers it) and is never turned
# away; then the core lists it as an unmanaged phone it let in.
syncs_all_day() {
  local i
  for i in $(seq 10); do
    reaches "$1" "$2" || eg_fail "sync $i of $1 was turned away: $(grep "\"$1\"" "$TMP/access.log" | tail -1)"
    sleep 0.2
  done
  for _ in $(seq 50); do [ "$(R HGET "easgate:dev:$1" state)" = allow ] && break; sleep 0.1; done
  [ "$(R HGET "easgate:dev:$1" state)" = allow ] ||
    eg_fail "the core wrote '$(R HGET "easgate:dev:$1" state)' for $1, want allow"
  [ "$(R HGET "easgate:dev:$1" reason)" = unmanaged-allowed ] ||
    eg_fail "reason '$(R HGET "easgate:dev:$1" reason)' for $1, want unmanaged-allowed"
  reaches "$1" "$2" || eg_fail "$1 is turned away once the core recorded it"
  "$EG" core devices -c "$3" >"$TMP/list.out" 2>&1 || eg_fail "core devices failed: $(cat "$TMP/list.out")"
  grep -E "^$1 .*unmanaged" "$TMP/list.out" | grep -q allow ||
    eg_fail "$1 is not listed as an unmanaged phone let in: $(cat "$TMP/list.out")"
  grep -q "\"$1\".*\"decision\":\"block\"" "$TMP/access.log" && eg_fail "$1 was blocked at some point"
  return 0
}

# 1. Separate configurations; the core's has no policy: key.
eg_conf - <<EOF
  sighting_interval: 1h
EOF
cat >"$TMP/core.yaml" <<EOF
log: { level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
core:
  database: registry.db
  tick: 200ms
EOF
eg_stack -n core core "$TMP/core.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
eg_stack proxy "$TMP/easgate.yaml"
syncs_all_day ROLLA1 alice "$TMP/core.yaml"
eg_pass "rollout, core configured without a policy: the unenrolled phone syncs all day and is listed as unmanaged-allowed"
kill "$proxy_pid" "$core_pid"
wait "$proxy_pid" "$core_pid" 2>/dev/null || true

# 2. `easgate run`, one configuration for every role.
R FLUSHALL >/dev/null
: >"$TMP/access.log"
eg_conf - <<EOF
  sighting_interval: 1h
core:
  database: run-registry.db
  tick: 200ms
EOF
eg_stack run "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/run.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/run.log" || eg_fail "run: the core did not start"
syncs_all_day ROLLB1 bob "$TMP/easgate.yaml"
eg_pass "rollout, easgate run: the unenrolled phone syncs all day and is listed as unmanaged-allowed"
kill -0 "$run_pid" || eg_fail "easgate run died"
