#!/usr/bin/env bash
# Last seen and protocol facts of a known device (issue 17 point 5), with
# redis-server, exsim, `easgate proxy` and `easgate core`, driven by
# build/easclient:
#   - a device the registry holds (an admin added it) syncs at EAS 14.1:
#     the proxy reports a "seen" sighting after Exchange's 2xx, and the
#     core records the protocol version, the user agent, the client
#     address and last seen;
#   - a second request within the minute is not reported again (the
#     per-device limit), so the version stays what the first one said;
#   - an account-only wipe is refused naming the version recorded (14.1),
#     not "(never seen)";
#   - `easgate admin devices export` (CSV and JSON lines) carries these
#     facts, and the exported files import back unchanged (the facts are
#     read-only: only the device's own requests set them).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
EOF
cport=$(eg_port)
eg_redis
eg_exsim
eg_conf -w 1 - <<EOF  # one worker: the per-device limit is per worker
  sighting_interval: 1h
core:
  database: registry.db
  tick: 200ms
  last_seen_flush: 1s
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")
EG=$BUILD/easgate
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null || eg_fail "init-admin failed"
TOKEN=$("$EG" core token "${C[@]}" --user root 2>/dev/null)
eg_stack -n core core "$TMP/easgate.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start reading sightings"
eg_stack proxy "$TMP/easgate.yaml"
metric() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for _ in $(seq 50); do [ "$(metric easgate_redis_connected)" = 1 ] && break; sleep 0.1; done
[ "$(metric easgate_redis_connected)" = 1 ] || { echo "SKIP: proxy state store not wired"; exit 77; }

"$EG" core device add SEEN1 --user bob --type iPhone "${C[@]}" >/dev/null || eg_fail "device add failed"
for _ in $(seq 50); do [ "$(redis-cli -p "$redis_port" HGET easgate:dev:SEEN1 state)" = allow ] && break; sleep 0.1; done
show() { "$EG" core device show SEEN1 "${C[@]}"; }
show | grep -q "^eas_version: *-$" || eg_fail "a new device already has a version: $(show | grep eas_version)"

printf '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
ec() { "$BUILD/easclient" --url "http://127.0.0.1:$proxy_port" --user bob --device SEEN1 --type iPhone \
  --version "$1" --show-headers FolderSync "$TMP/fs.xml" 2>&1 || true; }
ec 14.1 | grep -qi '^X-Exsim-Cmd: FolderSync' || eg_fail "the known device's FolderSync did not reach Exchange"
SUPP='easgate_redis_sightings_total{result="suppressed"}'
before=$(metric "$SUPP")
ec 16.1 | grep -qi '^X-Exsim-Cmd: FolderSync' || eg_fail "the second FolderSync did not reach Exchange"
recorded() { show | grep -q "^eas_version: *14.1$"; }
for _ in $(seq 60); do recorded && break; sleep 0.1; done
recorded || eg_fail "the protocol version was not recorded: $(show | grep eas_version)"
show | grep -q "^user_agent: *easclient" || eg_fail "the user agent was not recorded: $(show | grep user_agent)"
show | grep -q "^last_client: *127.0.0.1$" || eg_fail "the client address was not recorded: $(show | grep last_client)"
seen_line() { show | sed -n 's/^last_seen: *//p'; }
for _ in $(seq 40); do [ "$(seen_line)" != - ] && break; sleep 0.1; done
[ "$(seen_line)" != - ] || eg_fail "last seen was not recorded"
after=$(metric "$SUPP")
[ -n "$before" ] && [ "$after" -gt "$before" ] ||
  eg_fail "the second request within the minute was reported again ($before -> $after)"
sleep 1.5
show | grep -q "^eas_version: *14.1$" || eg_fail "a request within the minute changed the version"
eg_pass "a known device's version, user agent and last seen are recorded, once a minute at most"

"$EG" core device wipe SEEN1 --account-only "${C[@]}" >"$TMP/wipe.out" 2>&1 &&
  eg_fail "an account-only wipe of a 14.1 phone was accepted"
grep -q "the device last spoke ActiveSync 14.1, and AccountOnlyRemoteWipe needs 16.1" "$TMP/wipe.out" ||
  eg_fail "the refusal does not name the recorded version: $(cat "$TMP/wipe.out")"
eg_pass "an account-only wipe is refused naming the recorded version (14.1)"
kill -0 "$core_pid" || eg_fail "the core died"

# The newest contact of the minute wins, without more entries: a proxy
# whose interval is 3 s (sighting_interval, which "seen" follows below a
# minute) sends the first contact at once and holds the next ones back,
# then sends the newest (its time, version and address) when the interval
# ends; a device that went quiet is not reported again.
p2=$(eg_port) a2=$(eg_port)
sed "s/127.0.0.1:$proxy_port\$/127.0.0.1:$p2/; s/127.0.0.1:$admin_port\$/127.0.0.1:$a2/;
     s/sighting_interval: 1h/sighting_interval: 3s/" "$TMP/easgate.yaml" >"$TMP/p2.yaml"
eg_stack -n proxy2 proxy "$TMP/p2.yaml"
for _ in $(seq 50); do
  [ "$(curl -s --max-time 5 "http://127.0.0.1:$a2/metrics" | awk '$1 == "easgate_redis_connected" {print $2}')" = 1 ] && break
  sleep 0.1
done
"$EG" core device add SEEN2 --user bob --type iPhone "${C[@]}" >/dev/null || eg_fail "device add SEEN2 failed"
for _ in $(seq 50); do [ "$(redis-cli -p "$redis_port" HGET easgate:dev:SEEN2 state)" = allow ] && break; sleep 0.1; done
ec2() { "$BUILD/easclient" --url "http://127.0.0.1:$p2" --user bob --device SEEN2 --type iPhone \
  --version "$1" --show-headers FolderSync "$TMP/fs.xml" 2>&1 || true; }
entries() { redis-cli -p "$redis_port" XRANGE easgate:sightings - + | grep -c '^SEEN2$' || true; }
show2() { "$EG" core device show SEEN2 "${C[@]}"; }
t_first=$(( $(date +%s%N) / 1000000 ))
ec2 14.1 | grep -qi '^X-Exsim-Cmd: FolderSync' || eg_fail "SEEN2's first FolderSync did not reach Exchange"
sleep 0.3
t_last=$(( $(date +%s%N) / 1000000 ))
ec2 16.1 | grep -qi '^X-Exsim-Cmd: FolderSync' || eg_fail "SEEN2's second FolderSync did not reach Exchange"
# (unless this machine was so slow that the interval already ended)
[ $(( $(date +%s%N) / 1000000 - t_first )) -ge 2500 ] || [ "$(entries)" = 1 ] ||
  eg_fail "the second contact within the interval was sent at once ($(entries) entries)"
newest() { show2 | grep -q "^eas_version: *16.1$"; }
for _ in $(seq 100); do newest && break; sleep 0.1; done
newest || eg_fail "the newest contact of the interval never reached the core: $(show2 | grep eas_version)"
[ "$(entries)" = 2 ] || eg_fail "want 2 entries for 2 contacts in one interval, got $(entries)"
# last seen is the second contact's time (to the second the CLI prints).
seen_s=$(date -u -d "$(show2 | sed -n 's/^last_seen: *//p')" +%s 2>/dev/null || echo 0)
[ "$seen_s" -ge $(( t_last / 1000 )) ] ||
  eg_fail "last seen $(show2 | sed -n 's/^last_seen: *//p') is older than the newest contact ($t_last ms)"
sleep 4.5
[ "$(entries)" = 2 ] || eg_fail "a quiet device was reported again ($(entries) entries)"
eg_pass "the newest contact of an interval wins (version 16.1, its time), one entry per interval"
kill -0 "$core_pid" || eg_fail "the core died"

# Export and import: the facts of both devices are in the file (CSV times
# in ISO 8601 to the second, JSON in ms), and the file imports back as it
# is, changing nothing, facts included.
A=(--url "http://127.0.0.1:$cport" --token "$TOKEN")
"$EG" admin "${A[@]}" devices export --output "$TMP/all.csv" 2>/dev/null || eg_fail "CSV export failed"
"$EG" admin "${A[@]}" devices export --format jsonl --output "$TMP/all.jsonl" 2>/dev/null ||
  eg_fail "JSON lines export failed"
head -1 "$TMP/all.csv" | grep -q ',last_seen,last_checkin,eas_version,user_agent,last_client$' ||
  eg_fail "export header: $(head -1 "$TMP/all.csv")"
grep -Eq '^SEEN1,bob,iPhone,.*,20[0-9-]{8}T[0-9:]{8}Z,,14\.1,easclient/[^,]*,127\.0\.0\.1$' "$TMP/all.csv" ||
  eg_fail "SEEN1's facts are not in the CSV export: $(cat "$TMP/all.csv")"
grep -q '^SEEN2,.*,16\.1,easclient/[^,]*,127\.0\.0\.1$' "$TMP/all.csv" ||
  eg_fail "SEEN2's facts are not in the CSV export: $(cat "$TMP/all.csv")"
python3 - "$TMP/all.jsonl" <<'PY' || eg_fail "JSON lines export: $(cat "$TMP/all.jsonl")"
import json, sys, time
rows = {r["device_id"]: r for r in map(json.loads, open(sys.argv[1]))}
d = rows["SEEN1"]
assert d["eas_version"] == "14.1" and d["user_agent"].startswith("easclient") and d["last_client"] == "127.0.0.1", d
assert 0 < time.time() * 1000 - d["last_seen"] < 600000, d
assert rows["SEEN2"]["eas_version"] == "16.1", rows["SEEN2"]
PY
"$EG" admin "${A[@]}" devices import "$TMP/all.csv" | grep -q "0 created, 0 updated, 2 unchanged" ||
  eg_fail "the CSV export does not import back unchanged"
"$EG" admin "${A[@]}" devices import "$TMP/all.jsonl" | grep -q "0 created, 0 updated, 2 unchanged" ||
  eg_fail "the JSON lines export does not import back unchanged"
show | grep -q "^eas_version: *14.1$" && show | grep -q "^last_client: *127.0.0.1$" ||
  eg_fail "the import changed SEEN1's facts: $(show)"
eg_pass "export carries version, user agent, client address and last seen; it imports back unchanged"
kill -0 "$core_pid" || eg_fail "the core died"
