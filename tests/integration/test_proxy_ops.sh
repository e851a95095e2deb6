#!/usr/bin/env bash
# Operations: SIGHUP reloads the policy (a broken file is rejected and the
# old policy kept), SIGUSR1 reopens the access log, SIGTERM drains: /readyz
# turns 503 at once, a held Ping is answered early, the process exits within
# drain_grace. All of it in the process `easgate proxy` becomes: the lean
# proxy-only binary beside it (cli/lean/proxy_lean.c), same pid, without the
# other roles' libraries (libcurl, libldap, SQLite), and without libxml2
# until an EWS body is read (eas/ews.c).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || exit 77
[ -x "$BUILD/exsim" ] || exit 77

CERTS=$(eg_certs)
eg_exsim --tls
PX=$(eg_port); ADM=$(eg_port)

write_policy() {
  cat > "$TMP/policy.yaml" <<YAML
unknown_devices: allow
user_agents:
  allow: []
  block: ["$1"]
YAML
}
write_policy "BadApp*"
cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$ADM
  timeouts: { drain_grace: 4s, long_poll_margin: 5s }
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML

eg_stack proxy "$TMP/easgate.yaml"

exe=$(readlink "/proc/$proxy_pid/exe")
[ "$exe" = "$(cd "$BUILD" && pwd)/easgate-proxy-lean" ] || eg_fail "easgate proxy runs as $exe, not easgate-proxy-lean"
if grep -E 'libcurl|libldap|libsqlite3|libgnutls|libxml2|libicu' "/proc/$proxy_pid/maps" >/dev/null; then
  eg_fail "the idle proxy maps libraries it does not use: $(grep -oE '[^/]*(libcurl|libldap|libsqlite3|libgnutls|libxml2|libicu)[^ ]*' "/proc/$proxy_pid/maps" | sort -u | tr '\n' ' ')"
fi
eg_pass "easgate proxy runs as easgate-proxy-lean (pid kept), no libcurl/libldap/SQLite/GnuTLS/libxml2 mapped"

EAS="/Microsoft-Server-ActiveSync"
Q="Cmd=FolderSync&User=alice&DeviceId=ABC123&DeviceType=iPhone"
C=(curl -s --max-time 20 --cacert "$CERTS/ca.crt")
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' > "$TMP/fs.wbxml"
# prints "pass" when the request reached exsim, else "blocked"
try() {
  "${C[@]}" -D "$TMP/h" -o /dev/null -X POST "https://localhost:$PX$EAS?$Q" -H "User-Agent: $1" \
    -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml"
  if grep -qi '^X-Exsim-Cmd' "$TMP/h"; then echo pass; else echo blocked; fi
}

[ "$(try Apple-iPhone/1)" = pass ] || eg_fail "Apple-iPhone should pass at first"
[ "$(try BadApp/1)" = blocked ] || eg_fail "BadApp should be blocked at first"

# reload with a new policy: Apple blocked now
write_policy "Apple-*"
kill -HUP "$proxy_pid"
for _ in $(seq 50); do grep -q "reloaded" "$TMP/proxy.log" && break; sleep 0.1; done
sleep 0.2
[ "$(try Apple-iPhone/1)" = blocked ] || eg_fail "after reload Apple-iPhone should be blocked"
[ "$(try BadApp/1)" = pass ] || eg_fail "after reload BadApp should pass"
eg_pass "SIGHUP applies a new policy"

# reload with a broken policy: rejected, the running one stays
printf 'unknown_devices: [\n' > "$TMP/policy.yaml"
kill -HUP "$proxy_pid"
for _ in $(seq 50); do grep -q "reload rejected" "$TMP/proxy.log" && break; sleep 0.1; done
grep -q "reload rejected.*policy.yaml:[0-9]*:[0-9]*" "$TMP/proxy.log" || eg_fail "broken policy: no FILE:LINE:COL rejection logged"
[ "$(try Apple-iPhone/1)" = blocked ] || eg_fail "broken reload: old policy not kept"
kill -0 "$proxy_pid" || eg_fail "proxy died on a broken reload"
curl -s "http://127.0.0.1:$ADM/metrics" | eg_has '^easgate_reload_failures_total 1' || eg_fail "reload failure not counted"
eg_pass "SIGHUP with a broken file keeps the old policy"

# SIGUSR1: the log moved away is reopened at its path
mv "$TMP/access.log" "$TMP/access.log.1"
kill -USR1 "$proxy_pid"
for _ in $(seq 50); do [ -f "$TMP/access.log" ] && break; sleep 0.1; done
try BadApp/2 >/dev/null
for _ in $(seq 20); do [ -s "$TMP/access.log" ] && break; sleep 0.1; done
grep -q 'BadApp/2' "$TMP/access.log" || eg_fail "SIGUSR1: new access log not written"
eg_pass "SIGUSR1 reopens the access log"

# SIGTERM drain: a Ping held for 30 s is answered early, /readyz 503 at once
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x33\x30\x00\x01\x01' > "$TMP/ping.wbxml"
"${C[@]}" -D "$TMP/hp" -o "$TMP/bp" -w '%{http_code}' -X POST \
  "https://localhost:$PX$EAS?Cmd=Ping&User=alice&DeviceId=ABC123&DeviceType=iPhone" \
  -H 'User-Agent: BadApp/1' -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/ping.wbxml" > "$TMP/ping.code" &
ping_pid=$!
for _ in $(seq 50); do
  curl -s "http://127.0.0.1:$ADM/metrics" | eg_has '^easgate_held_pings 1' && break; sleep 0.1
done
curl -s "http://127.0.0.1:$ADM/metrics" | eg_has '^easgate_held_pings 1' || eg_fail "Ping not held"
t0=$(date +%s%N)
kill -TERM "$proxy_pid"
sleep 0.2
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM/readyz" || true)
[ "$code" = 503 ] || [ "$code" = 000 ] || eg_fail "/readyz during drain: $code"
wait "$ping_pid" || true
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(cat "$TMP/ping.code")" = 200 ] || eg_fail "held Ping: HTTP $(cat "$TMP/ping.code")"
# Ping (page 13, 0x45) > Status (0x47) = "1"
[ "$(xxd -p "$TMP/bp" | tr -d '\n')" = "03016a00000d45470331000101" ] || eg_fail "drained Ping body: $(xxd -p "$TMP/bp")"
grep -qi '^X-Exsim' "$TMP/hp" && eg_fail "the Ping answer should come from the proxy"
[ "$ms" -lt 2000 ] || eg_fail "held Ping answered after $ms ms"
for _ in $(seq 60); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$proxy_pid" 2>/dev/null && eg_fail "proxy still running 6 s after SIGTERM"
wait "$proxy_pid" || eg_fail "proxy exit status $?"
grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/proxy.log" && eg_fail "sanitizer report"
eg_pass "SIGTERM drain: readyz 503, held Ping answered in $ms ms, clean exit"
