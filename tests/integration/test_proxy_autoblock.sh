#!/usr/bin/env bash
# Exchange's autoblock thresholds at the proxy (issue 19.2): a device that
# crosses one (CommandFrequency, SyncCommands, UserAgentChanges,
# OutOfBudgets) is reported to the core as an autoblock sighting with the
# rule, the count, the window and the block the policy asks for, once per
# window; the proxy itself blocks nothing (the core decides).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
abuse:
  budgets:
    device: { per_minute: 6, burst: 8 } # one back per 10 s: AB3's ten requests run out however slow
  autoblock:
    command_frequency: { limit: 6, window: 1m, block: 2h }
    sync_commands: { limit: 4, window: 1m, block: 1h }
    user_agent_changes: { limit: 2, window: 1h, block: 14h }
    out_of_budgets: { limit: 1, window: 1h, block: 1h, action: quarantine }
YAML
eg_stack -w 1 proxy
req() { # DEVID CMD UA
  curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Length: 0' \
    -H 'MS-ASProtocolVersion: 14.1' -H "User-Agent: $3" -u dave:pw \
    "http://127.0.0.1:$proxy_port/Microsoft-Server-ActiveSync?Cmd=$2&User=dave&DeviceId=$1&DeviceType=iPhone"
}
for _ in $(seq 50); do
  curl -s "http://127.0.0.1:$admin_port/metrics" | eg_has '^easgate_redis_connected 1' && break
  sleep 0.1
done
# AB1: five Syncs then two MoveItems: SyncCommands at 4, CommandFrequency at 6
codes=$(for c in Sync Sync Sync Sync Sync MoveItems MoveItems; do req AB1 $c UA/1; done | tr '\n' ' ')
case "$codes" in *[!0-9\ ]* | *503*) eg_fail "AB1 answered $codes: autoblock must not block at the proxy" ;; esac
# AB2: its User-Agent changes twice
req AB2 Sync UA/1 >/dev/null && req AB2 Sync UA/2 >/dev/null && req AB2 Sync UA/3 >/dev/null
# AB3: runs out of its budget (burst 8), and crosses CommandFrequency too
for _ in $(seq 10); do req AB3 MoveItems UA/1; done | eg_has '^503$' || eg_fail "AB3 was never refused"
sleep 0.5
ent=$(redis-cli -p "$redis_port" --raw xrange easgate:sightings - +)
rules=$(echo "$ent" | awk 'p {print; p = 0} /^rule$/ {p = 1}' | sort | tr '\n' ' ')
[ "$rules" = "CommandFrequency CommandFrequency OutOfBudgets SyncCommands UserAgentChanges " ] ||
  eg_fail "autoblock sightings for rules '$rules'"
echo "$ent" | awk 'p {print; p = 0} /^block_ms$/ {p = 1}' | eg_has '^50400000$' ||
  eg_fail "UserAgentChanges' block (14h) not in its sighting"
# the action the policy asks for: quarantine for OutOfBudgets, block for the rest
acts=$(echo "$ent" | awk 'p {print; p = 0} /^action$/ {p = 1}' | sort | uniq -c | tr -s ' \n' ' ')
[ "$acts" = " 4 block 1 quarantine " ] || eg_fail "autoblock actions '$acts'"
m=$(curl -s "http://127.0.0.1:$admin_port/metrics")
echo "$m" | eg_has '^easgate_autoblock_crossed_total{rule="SyncCommands"} 1$' || eg_fail "metrics: $(echo "$m" | grep autoblock)"
# once per window: more Syncs from AB1 report nothing new
req AB1 Sync UA/1 >/dev/null
sleep 0.3
n=$(redis-cli -p "$redis_port" --raw xrange easgate:sightings - + | grep -c '^autoblock$')
[ "$n" = 5 ] || eg_fail "$n autoblock sightings, want 5 (one per device, rule and window)"
# a clean exit (in the ASan build: no leak, no sanitizer report)
eg_stop_clean proxy
eg_pass "autoblock thresholds reported to the core"
