#!/usr/bin/env bash
# Certificate renewal without a restart: the files behind tls.cert/tls.key
# are replaced and SIGHUP makes new connections get the new certificate,
# while a Ping held over a connection made before the reload is answered
# over it. A broken certificate or a key that does not match is rejected with
# the file named, and the certificate loaded before stays. A new upstream CA
# applies to the next connection to Exchange (no session resumed past it).
# Clean exit at the
# end (under ASan, a context leaked or freed too early fails the test).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in curl openssl; do command -v $t >/dev/null || { echo "no $t"; exit 77; }; done
[ -x "$BUILD/exsim" ] || exit 77

A=$(eg_certs)                 # the PKI the proxy starts with
B="$TMP/b"                    # another CA and proxy certificate: the renewal
bash "$SRC/certs/mkcerts" "$B" >/dev/null
LIVE="$TMP/live"              # what the configuration names
mkdir -p "$LIVE"
cp "$A/proxy.crt" "$LIVE/proxy.crt"; cp "$A/proxy.key" "$LIVE/proxy.key"
eg_exsim --tls --ping-cap 4  # answers a held Ping after 4 s
PX=$(eg_port); ADM=$(eg_port)

write_conf() { # write_conf UPSTREAM_CA (pool_size 0: every request connects, resuming a session)
  cat > "$TMP/easgate.yaml" <<YAML
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$ADM
  instances:
    - name: main
      listen: 127.0.0.1:$PX
      tls: { cert: $LIVE/proxy.crt, key: $LIVE/proxy.key }
      upstream: { url: https://localhost:$exsim_port, ca: $1, pool_size: 0 }
log: { access: "off", level: info }
YAML
}
write_conf "$A/ca.crt"
eg_stack proxy "$TMP/easgate.yaml"

fpr() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served() { # the certificate a new connection gets
  openssl s_client -connect "127.0.0.1:$PX" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADM/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
reloads() { grep -c "reloaded $TMP/easgate.yaml" "$TMP/proxy.log" || true; }
rejects() { grep -c "reload rejected" "$TMP/proxy.log" || true; }
hup_until() { # hup_until COUNTER: SIGHUP, wait (5 s at most) for COUNTER to grow
  local n; n=$($1)
  kill -HUP "$proxy_pid"
  for _ in $(seq 50); do [ "$($1)" -gt "$n" ] && return 0; sleep 0.1; done
  eg_fail "SIGHUP: no '$1' line in the log within 5 s"
}
EAS="/Microsoft-Server-ActiveSync"
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' > "$TMP/fs.wbxml"
passes() { # passes CA: a FolderSync verified against CA reaches exsim
  curl -s --max-time 10 --cacert "$1" -D "$TMP/h" -o /dev/null -X POST \
    "https://localhost:$PX$EAS?Cmd=FolderSync&User=alice&DeviceId=RELOAD1&DeviceType=iPhone" \
    -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/fs.wbxml" || true
  grep -qi '^X-Exsim-Cmd' "$TMP/h" 2>/dev/null
}

[ "$(served)" = "$(fpr "$A/proxy.crt")" ] || eg_fail "at start the proxy does not serve A's certificate"
passes "$A/ca.crt" || eg_fail "at start a request verified against A does not pass"

# a Ping held over a connection made with A's certificate
printf '\x03\x01\x6a\x00\x00\x0d\x45\x48\x03\x36\x30\x00\x01\x01' > "$TMP/ping.wbxml"
curl -s --max-time 20 --cacert "$A/ca.crt" -D "$TMP/hp" -o /dev/null -w '%{http_code}' -X POST \
  "https://localhost:$PX$EAS?Cmd=Ping&User=alice&DeviceId=RELOAD2&DeviceType=iPhone" \
  -H 'MS-ASProtocolVersion: 14.1' --data-binary @"$TMP/ping.wbxml" > "$TMP/ping.code" &
ping_pid=$!
for _ in $(seq 50); do [ "$(metric easgate_held_pings)" = 1 ] && break; sleep 0.1; done
[ "$(metric easgate_held_pings)" = 1 ] || eg_fail "the Ping is not held"

# renewal: new files at the same paths, then SIGHUP
cp "$B/proxy.crt" "$LIVE/proxy.crt"; cp "$B/proxy.key" "$LIVE/proxy.key"
hup_until reloads
[ "$(served)" = "$(fpr "$B/proxy.crt")" ] || eg_fail "after SIGHUP new connections do not get the renewed certificate"
passes "$B/ca.crt" || eg_fail "after SIGHUP a request verified against the new CA does not pass"
passes "$A/ca.crt" && eg_fail "after SIGHUP the old certificate is still served"
eg_pass "SIGHUP serves a renewed certificate to new connections"

wait "$ping_pid" || true
[ "$(cat "$TMP/ping.code")" = 200 ] || eg_fail "Ping held across the reload: HTTP $(cat "$TMP/ping.code")"
grep -qi '^X-Exsim-Cmd: *Ping' "$TMP/hp" || eg_fail "the held Ping was not answered by Exchange over its connection"
eg_pass "a Ping held across the reload is answered over the connection it came on"

# a broken certificate file: rejected, named, B still served
echo "not a certificate" > "$LIVE/proxy.crt"
hup_until rejects
grep -q "reload rejected.*$LIVE/proxy.crt" "$TMP/proxy.log" || eg_fail "broken certificate: the file is not named in the rejection"
[ "$(served)" = "$(fpr "$B/proxy.crt")" ] || eg_fail "broken certificate: the running one was not kept"
# a key that does not match the certificate: rejected too
cp "$B/proxy.crt" "$LIVE/proxy.crt"; cp "$A/proxy.key" "$LIVE/proxy.key"
hup_until rejects
grep -q "reload rejected.*$LIVE/proxy.key.*mismatch" "$TMP/proxy.log" || eg_fail "mismatched key: no clear rejection"
[ "$(served)" = "$(fpr "$B/proxy.crt")" ] || eg_fail "mismatched key: the running certificate was not kept"
passes "$B/ca.crt" || eg_fail "after two rejected reloads requests do not pass"
[ "$(metric easgate_reload_failures_total)" = 2 ] || eg_fail "rejected reloads not counted"
eg_pass "a broken certificate or a mismatched key is rejected and the running one kept"

# the upstream CA changed: sessions saved under the old one are not resumed,
# so Exchange's certificate (signed by A) now fails the check against B
cp "$B/proxy.key" "$LIVE/proxy.key"
write_conf "$B/ca.crt"
hup_until reloads
passes "$B/ca.crt" && eg_fail "after the upstream CA changed, a request still reached Exchange (session resumed?)"
grep -q "certificate verify failed" "$TMP/proxy.log" || eg_fail "the upstream certificate was not checked against the new CA"
write_conf "$A/ca.crt"
hup_until reloads
passes "$B/ca.crt" || eg_fail "with the upstream CA restored, requests do not pass"
eg_pass "a reload with a new upstream CA verifies Exchange against it"

eg_stop_clean proxy
eg_pass "clean exit after the reloads"
