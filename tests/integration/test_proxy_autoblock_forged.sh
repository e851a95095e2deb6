#!/usr/bin/env bash
# Autoblock cannot be set off in someone else's name (issue 19.2, security):
# the proxy counts a device's autoblock incidents only from requests that
# Exchange accepted (2xx), and an OutOfBudgets refusal only when it comes
# from the user and address of the device's last accepted request. With the
# simulator checking Basic passwords and trusted X-Forwarded-For addresses:
#   1. an attacker naming the victim's DeviceId, with no credentials or a
#      wrong password, sends more requests than every threshold: Exchange
#      answers 401 each time and no autoblock is reported;
#   2. the phone itself (right password) crosses CommandFrequency: reported;
#   3. its budget spent, the attacker's requests from another address are
#      refused 503 but are not OutOfBudgets incidents of the device; the
#      phone's own next request is, and is reported.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
[ -x "$BUILD/easgate" ] && [ -x "$BUILD/exsim" ] || { echo "no easgate/exsim in $BUILD"; exit 77; }

eg_redis
eg_exsim --auth basic --users 'dave:pw'
cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
abuse:
  budgets:
    device: { per_minute: 1, burst: 5 }
  credentials: { client_failures: 0, user_failures: 0, known_device_failures: 0 }
  autoblock:
    command_frequency: { limit: 4, window: 1m, block: 2h }
    sync_commands: { limit: 4, window: 1m, block: 1h }
    out_of_budgets: { limit: 1, window: 1h, block: 1h }
YAML
eg_proxy 1 -t
PX=$PX1
# req CMD ADDR [USER:PASS]: prints the status
req() {
  local cred=()
  [ -n "${3:-}" ] && cred=(-u "$3")
  curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Length: 0' \
    -H 'MS-ASProtocolVersion: 14.1' -H "User-Agent: UA/$RANDOM" -H "X-Forwarded-For: $2" "${cred[@]}" \
    "http://127.0.0.1:$PX/Microsoft-Server-ActiveSync?Cmd=$1&User=dave&DeviceId=VICTIM1&DeviceType=iPhone"
}
rules() {
  redis-cli -p "$redis_port" --raw xrange easgate:sightings - + |
    awk 'p {print; p = 0} /^rule$/ {p = 1}' | sort | tr '\n' ' '
}
ATT=198.51.100.66 PHONE=192.0.2.20

# 1. forged: 8 Syncs with no credentials, 8 with a wrong password
codes=$( (for _ in $(seq 8); do req Sync $ATT; req Sync $ATT dave:wrong; done) | sort | uniq -c | tr -s ' \n' ' ')
case "$codes" in " 16 401 ") ;; *) eg_fail "the attacker's requests were answered:$codes (want 16 x 401)" ;; esac
sleep 0.5
[ -z "$(rules)" ] || eg_fail "requests Exchange refused set off autoblock: $(rules)"
eg_pass "unauthenticated and wrong-password requests in a device's name count no autoblock incident"

# 2. the phone itself: 4 accepted Syncs cross CommandFrequency and SyncCommands
codes=$(for _ in 1 2 3 4; do req Sync $PHONE dave:pw; done | tr '\n' ' ')
[ "$codes" = "200 200 200 200 " ] || eg_fail "the phone's Syncs answered $codes"
for _ in $(seq 20); do [ -n "$(rules)" ] && break; sleep 0.1; done
[ "$(rules)" = "CommandFrequency SyncCommands " ] || eg_fail "the phone's own requests reported '$(rules)'"
eg_pass "the device's accepted requests do cross the thresholds"

# 3. one token left: the phone's 5th Sync spends it; then the attacker,
# from elsewhere, is refused but is not the device's OutOfBudgets
[ "$(req Sync $PHONE dave:pw)" = 200 ] || eg_fail "the phone's 5th Sync was not forwarded"
codes=$(for _ in 1 2 3; do req FolderSync $ATT dave:wrong; req FolderSync $ATT; done | tr '\n' ' ')
[ "$codes" = "503 503 503 503 503 503 " ] || eg_fail "the attacker's requests over budget answered $codes"
sleep 0.3
[ "$(rules)" = "CommandFrequency SyncCommands " ] ||
  eg_fail "refusals of another address counted as the device's OutOfBudgets: $(rules)"
[ "$(req FolderSync $PHONE dave:pw)" = 503 ] || eg_fail "the phone over its budget was not refused"
for _ in $(seq 20); do [ "$(rules)" != "CommandFrequency SyncCommands " ] && break; sleep 0.1; done
[ "$(rules)" = "CommandFrequency OutOfBudgets SyncCommands " ] ||
  eg_fail "the phone's own refusal was not an OutOfBudgets incident: $(rules)"
eg_pass "OutOfBudgets counts the device's own refusals, not an attacker's from elsewhere"
eg_stop_clean proxy1
