#!/usr/bin/env bash
# Binding on first use, end to end over real TLS: Redis, exsim (TLS), the
# core with the enrollment portal, a proxy instance with client_auth
# required. A user enrolls through the portal (no DeviceId), the PKCS#12
# from the page goes into curl; the first FolderSync Exchange accepts binds
# that DeviceId to the certificate (the registry, `core device show`, the
# device hash's enrollment and the enrollment's hash); the same certificate
# with a second DeviceId is refused with cert-mismatch and an audit event;
# the bound DeviceId with another portal certificate is refused too; the
# bound pair keeps working.
set -u
. "$(dirname "$0")/lib.sh" "$@"

. "$(dirname "$0")/enroll_bind.sh"

EG="$BUILD/easgate"
eb_setup
invite() {
  "$EG" core enroll invite "$1" -c easgate.yaml --user "$2" --json 2>>inv.log |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
K1=$(invite alice@example.com alice) || eg_fail "invite: $(cat inv.log)"
K2=$(invite alice@example.com alice) || eg_fail "invite: $(cat inv.log)"
eb_start

# enroll KEY NAME: through the portal (Android), PEM certificate and key out
enroll() {
  curl -s --cacert "$CERTS/ca.crt" -o "$2.html" -d "key=$1&platform=android" "https://127.0.0.1:$EN/enroll"
  local pw dl
  pw=$(sed -n 's|.*<code>\([^<]*\)</code>.*|\1|p' "$2.html" | head -1)
  dl=$(sed -n 's|.*href="\(/enroll/dl/[A-Z0-9]*\)".*|\1|p' "$2.html" | head -1)
  [ -n "$pw" ] && [ -n "$dl" ] || eg_fail "portal: no password or download: $(cat "$2.html")"
  curl -s --cacert "$CERTS/ca.crt" -o "$2.p12" "https://127.0.0.1:$EN$dl"
  eb_pem "$2" "$2.p12" "$pw"
}
enroll "$K1" one
enroll "$K2" two
E1=$(eb_enrollment one)
[ -n "$E1" ] || eg_fail "no enrollment id in the portal certificate"

sync() { eb_sync "$@"; }
last_reason() { eb_last_reason; }
bound_to() { eb_bound_to "$1"; }

# Until the proxy's Redis link answers, a portal certificate fails closed
# (cert-binding-unavailable): the phone tries again, and so does this.
eb_first_sync one PHONE1
[ "$out" = 200 ] && [ $fwd = 1 ] || eg_fail "first use of the portal certificate: HTTP $out, forwarded $fwd ($(last_reason))"
for _ in $(seq 150); do [ "$(bound_to "$E1")" = PHONE1 ] && break; sleep 0.1; done
[ "$(bound_to "$E1")" = PHONE1 ] ||
  eg_fail "the first 2xx did not bind PHONE1: '$(bound_to "$E1")'; sightings: $(redis-cli -p "$redis_port" XRANGE easgate:sightings - + | tr '\n' ' ')"
"$EG" core device show PHONE1 -c easgate.yaml >show.txt 2>&1
grep -q "cert_enrollment: *$E1" show.txt || eg_fail "device show lacks the binding: $(cat show.txt)"
grep -q "managed: *yes" show.txt && grep -q "^user: *alice" show.txt || eg_fail "PHONE1 not managed for alice: $(cat show.txt)"
[ "$(redis-cli -p "$redis_port" HGET easgate:dev:PHONE1 enrollment)" = "$E1" ] || eg_fail "the device hash has no enrollment"
[ "$(redis-cli -p "$redis_port" HGET "easgate:enr:$E1" device)" = PHONE1 ] || eg_fail "the enrollment hash has no device"
sqlite3 reg.db "SELECT count(*) FROM audit WHERE action = 'enroll.bind' AND target = 'PHONE1'" | grep -qx 1 ||
  eg_fail "no enroll.bind audit line"
eg_pass "portal certificate, first FolderSync (2xx) binds PHONE1: registry, device show, both Redis hashes, audit"

sync one PHONE1
[ "$out" = 200 ] && [ $fwd = 1 ] || eg_fail "the bound pair: HTTP $out ($(last_reason))"
sync one PHONE2
[ $fwd = 0 ] || eg_fail "a second DeviceId with the bound certificate reached exsim"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "second DeviceId: reason $(last_reason)"
[ "$(xxd -p body | tr -d '\n')" = "03016a000007564c0331323900""0101" ] || eg_fail "second DeviceId: not Status 129: $(xxd -p body)"
for _ in $(seq 150); do
  [ "$(sqlite3 reg.db "SELECT count(*) FROM audit WHERE action = 'device.cert-mismatch' AND target = 'PHONE2'")" -ge 1 ] && break
  sleep 0.1
done
sqlite3 reg.db "SELECT detail FROM audit WHERE action = 'device.cert-mismatch' AND target = 'PHONE2'" | grep -q "$E1 is bound to device PHONE1" ||
  eg_fail "no cert-mismatch audit event for PHONE2: $(sqlite3 reg.db "SELECT action, target, detail FROM audit" | tail -5)"
[ "$(bound_to "$E1")" = PHONE1 ] || eg_fail "the binding moved"
eg_pass "the bound certificate with a second DeviceId: Status 129, cert-mismatch, audit event; the pair still works"

sync two PHONE1
[ $fwd = 0 ] || eg_fail "PHONE1 with another portal certificate reached exsim"
[ "$(last_reason)" = cert-mismatch ] || eg_fail "PHONE1 with another certificate: reason $(last_reason)"
sync two PHONE3
[ "$out" = 200 ] && [ $fwd = 1 ] || eg_fail "the second certificate on a new device: HTTP $out ($(last_reason))"
E2=$(eb_enrollment two)
for _ in $(seq 150); do [ "$(bound_to "$E2")" = PHONE3 ] && break; sleep 0.1; done
[ "$(bound_to "$E2")" = PHONE3 ] || eg_fail "the second certificate did not bind PHONE3"
eg_pass "the bound DeviceId with another portal certificate: cert-mismatch; that certificate binds its own device"
eg_stop_clean proxy
eg_stop_clean core
