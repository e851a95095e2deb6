#!/usr/bin/env bash
# Behind an HTTP load balancer that ends TLS (it cannot send a PROXY header):
# an instance with trusted_proxies believes X-Forwarded-For from those
# addresses only. The client logged is the first address from the right that
# is not a trusted balancer; Exchange gets the balancers' chain with the
# balancer appended. An instance without trusted_proxies ignores a client's
# X-Forwarded-For (no spoofing). Every access-log line stays valid JSON.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in curl python3; do command -v $t >/dev/null || { echo "no $t"; exit 77; }; done
[ -x "$BUILD/exsim" ] || exit 77

eg_exsim
LB=$(eg_port); OPEN=$(eg_port)
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: off
  instances:
    - name: behind-lb
      listen: 127.0.0.1:$LB
      trusted_proxies: ["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"]
      upstream: { url: http://127.0.0.1:$exsim_port }
    - name: direct
      listen: 127.0.0.1:$OPEN
      upstream: { url: http://127.0.0.1:$exsim_port }
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"

n=0
# req PORT DEVICE [XFF...]: one FolderSync; sets $client (access log) and
# $seen (the X-Forwarded-For exsim got)
req() {
  local port=$1 dev=$2; shift 2
  local hdrs=() x
  for x in "$@"; do hdrs+=(-H "X-Forwarded-For: $x"); done
  curl -s --max-time 10 -D "$TMP/h" -o /dev/null -X POST -H 'MS-ASProtocolVersion: 14.1' \
    "${hdrs[@]}" --data-binary @/dev/null \
    "http://127.0.0.1:$port/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=$dev&DeviceType=iPhone"
  seen=$(awk -F': ' 'tolower($1) == "x-exsim-forwarded-for" {print $2}' "$TMP/h" | tr -d '\r')
  n=$((n + 1))
  for _ in $(seq 30); do [ "$(wc -l < "$TMP/access.log" 2>/dev/null || echo 0)" -ge $n ] && break; sleep 0.1; done
  client=$(tail -n 1 "$TMP/access.log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["client"])')
}
want() { # want CLIENT SEEN WHAT
  [ "$client" = "$1" ] || eg_fail "$3: client logged '$client', want '$1'"
  [ "$seen" = "$2" ] || eg_fail "$3: Exchange got X-Forwarded-For '$seen', want '$2'"
}

req "$LB" RIP1
want 127.0.0.1 127.0.0.1 "no X-Forwarded-For"
req "$LB" RIP2 "203.0.113.9, 10.1.1.1"
want 203.0.113.9 "203.0.113.9, 10.1.1.1, 127.0.0.1" "client behind two balancers"
req "$LB" RIP3 "198.51.100.1,203.0.113.9 ,  10.1.1.1"
want 203.0.113.9 "198.51.100.1,203.0.113.9 ,  10.1.1.1, 127.0.0.1" "a spoofed address left of the client"
req "$LB" RIP4 "203.0.113.5" "10.2.2.2"
want 203.0.113.5 "203.0.113.5, 10.2.2.2, 127.0.0.1" "two X-Forwarded-For headers"
req "$LB" RIP5 "not-an-address, 10.1.1.1"
want 10.1.1.1 "not-an-address, 10.1.1.1, 127.0.0.1" "a value that is not an address"
req "$LB" RIP6 "2001:db8::9, 2001:db8:ffff::1"
want 2001:db8::9 "2001:db8::9, 2001:db8:ffff::1, 127.0.0.1" "IPv6 client behind an IPv6 balancer"
req "$LB" RIP7 '203.0.113.7", "x'
want 127.0.0.1 '203.0.113.7", "x, 127.0.0.1' "quotes in the header"
eg_pass "behind trusted balancers the client is the first untrusted address from the right"

req "$OPEN" RIP8 "203.0.113.66"
want 127.0.0.1 127.0.0.1 "untrusted peer"
eg_pass "without trusted_proxies a client's X-Forwarded-For is ignored"

# trusted_proxies is read at start: a reload that changes it says so and
# changes nothing
sed -i 's#trusted_proxies: \["127.0.0.1", #trusted_proxies: [#' "$TMP/easgate.yaml"
kill -HUP "$proxy_pid"
for _ in $(seq 50); do grep -q "reloaded" "$TMP/proxy.log" && break; sleep 0.1; done
grep -q "reload: .*trusted_proxies.* keep their startup values" "$TMP/proxy.log" ||
  eg_fail "a reload that changes trusted_proxies does not warn"
req "$LB" RIP9 "203.0.113.9"
want 203.0.113.9 "203.0.113.9, 127.0.0.1" "after a reload that changed trusted_proxies"
eg_pass "a reload that changes trusted_proxies warns and keeps the startup list"

python3 - "$TMP/access.log" <<'PY' || eg_fail "the access log is not valid JSON lines"
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)
PY
grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/proxy.log" && eg_fail "sanitizer report"
eg_pass "access log lines are valid JSON"
