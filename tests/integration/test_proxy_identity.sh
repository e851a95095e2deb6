#!/usr/bin/env bash
# The identity rule through the proxy (docs/security.md): the user bound to
# a device is read from exactly the credential Exchange authenticates.
# Attacks that walked around it on the old main, each asserted here:
#   - Basic for bob with User=alice on alice's device (the query named the user);
#   - two Authorization headers, non-canonical Basic (the proxy and Exchange
#     could read different users) -> 400;
#   - a credential the proxy cannot read (Negotiate/Kerberos, an unchecked
#     Bearer) on a bound device -> identity.unverifiable decides;
#   - a forged, expired or foreign Bearer token -> not believed with
#     identity.bearer.jwks; a signed one is;
#   - sightings of requests Exchange refused (401) -> none; after a 2xx ->
#     auth=exchange; blocked by the proxy -> no auth;
#   - allow_cert_bound: a client certificate for the device and its bound
#     user lets a Kerberos request through, its absence does not.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli curl openssl; do command -v $t >/dev/null || exit 77; done

eg_redis
eg_exsim --auth basic --users 'alice:pw-a,bob:pw-b'
CERTS=$(eg_certs)
cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
EOF
eg_take_port proxy
eg_take_port admin
eg_take_port tlsp
cat >"$TMP/easgate.yaml" <<EOF
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$admin_port
  instances:
    - name: t
      listen: 127.0.0.1:$proxy_port
      upstream: { url: http://127.0.0.1:$exsim_port }
    - name: certs
      listen: 127.0.0.1:$tlsp_port
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $CERTS/device-ca.crt }
      upstream: { url: http://127.0.0.1:$exsim_port }
policy: policy.yaml
log: { access: access.log, error: "-", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
  lookup_timeout: 500ms # a loaded machine answers slowly; this test is not about the timeout
EOF
eg_stack proxy "$TMP/easgate.yaml"
R() { redis-cli -p "$redis_port" "$@"; }
R HSET easgate:dev:ALICEPHONE state allow user alice reason t version 1 >/dev/null
R HSET easgate:dev:FREEPHONE state allow user "" reason t version 1 >/dev/null

EAS="http://127.0.0.1:$proxy_port/Microsoft-Server-ActiveSync"
# FolderSync with SyncKey 0, as a phone sends it first
printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/fs.wbxml"
b64() { printf %s "$1" | base64 -w0; }
# req DEVICE QUERY_USER CURL_ARGS...: the access-log line of the request
req() {
  local dev=$1 quser=$2 n
  shift 2
  n=$(wc -l <"$TMP/access.log" 2>/dev/null || echo 0)
  curl -s --max-time 10 -o /dev/null -H 'MS-ASProtocolVersion: 14.1' "$@" \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/fs.wbxml" \
    "${BASE:-$EAS}?Cmd=FolderSync&User=$quser&DeviceId=$dev&DeviceType=iPhone" || true
  for _ in $(seq 50); do
    [ "$(wc -l <"$TMP/access.log" 2>/dev/null || echo 0)" -gt "$n" ] && break
    sleep 0.1
  done
  tail -n 1 "$TMP/access.log"
}
want() { # LINE FIELD VALUE WHAT
  local got
  [ -n "$1" ] || eg_fail "$4: no access-log line"
  got=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2")
  [ "$got" = "$3" ] || eg_fail "$4: $2 is '$got', want '$3' ($1)"
}

# 1. Basic names the user; the query's User= never stands in for it.
l=$(req ALICEPHONE alice -H "Authorization: Basic $(b64 bob:pw-b)")
want "$l" reason user-mismatch "bob's Basic with User=alice on alice's device"
want "$l" user bob "bob's Basic with User=alice"
want "$l" credential basic "Basic"
l=$(req ALICEPHONE bob -H "Authorization: Basic $(b64 alice:pw-a)")
want "$l" decision allow "alice's Basic with User=bob on alice's device"
want "$l" status 200 "alice's Basic reaches Exchange"
echo "Basic binds the header's user, not the query's"

# 2. Two Authorization headers, non-canonical Basic: 400, nothing bound.
l=$(req ALICEPHONE alice -H "Authorization: Basic $(b64 alice:pw-a)" -H "Authorization: Basic $(b64 bob:pw-b)")
want "$l" status 400 "two Authorization headers"
want "$l" reason authorization-invalid "two Authorization headers"
nc=$(b64 alice:pw-a)
nc=${nc%%=*}
l=$(req ALICEPHONE alice -H "Authorization: Basic $nc")
want "$l" status 400 "Basic without its padding"
l=$(req ALICEPHONE alice -H "Authorization: Basic $(b64 alice:pw-a | sed 's/./& /4')")
want "$l" status 400 "Basic split by a space"
echo "two Authorization headers and non-canonical Basic: 400"

# 3. A credential the proxy cannot read: identity.unverifiable (default
# allow_unbound) lets only devices bound to nobody through.
krb="Negotiate $(head -c 600 /dev/urandom | base64 -w0)"
l=$(req ALICEPHONE alice -H "Authorization: $krb")
want "$l" reason identity-unverifiable "Kerberos on a bound device"
want "$l" credential unreadable "Kerberos"
want "$l" user "" "Kerberos names nobody the proxy can believe"
l=$(req FREEPHONE alice -H "Authorization: $krb")
want "$l" decision allow "Kerberos on a device bound to nobody"
printf 'unknown_devices: allow\nidentity: { unverifiable: block }\n' >"$TMP/policy.yaml"
kill -HUP "$proxy_pid"
sleep 0.5
l=$(req FREEPHONE alice -H "Authorization: $krb")
want "$l" reason identity-unverifiable "Kerberos under unverifiable: block"
echo "unreadable credentials: allow_unbound and block as documented"

# 4. Bearer tokens: unchecked = unverifiable; with a JWKS, a signed token
# for the audience is believed, a forged or expired one is not.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/idp.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/evil.key" 2>/dev/null
jwt() { # KEY USER EXP_OFFSET
  python3 - "$@" <<'PY'
import base64, json, subprocess, sys, time
key, user, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h = u(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
now = int(time.time())
p = u(json.dumps({"iss": "https://idp.test", "aud": "eas", "upn": user,
                  "exp": now + off, "nbf": now - 60}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=(h + "." + p).encode(),
                     capture_output=True, check=True).stdout
print(h + "." + p + "." + u(sig))
PY
}
python3 - "$TMP/idp.key" >"$TMP/jwks.json" <<'PY'
import base64, json, re, subprocess, sys
t = subprocess.run(["openssl", "rsa", "-in", sys.argv[1], "-noout", "-modulus"],
                   capture_output=True, check=True, text=True).stdout
n = int(re.search(r"Modulus=([0-9A-F]+)", t).group(1), 16)
u = lambda i: base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
print(json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "n": u(n), "e": u(65537)}]}))
PY
good=$(jwt "$TMP/idp.key" alice 600)
l=$(req ALICEPHONE alice -H "Authorization: Bearer $good")
want "$l" reason identity-unverifiable "an unchecked Bearer token on a bound device"
want "$l" credential bearer-unverified "an unchecked Bearer token"
cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
identity:
  unverifiable: block
  bearer: { jwks: jwks.json, issuer: "https://idp.test", audience: eas }
EOF
kill -HUP "$proxy_pid"
sleep 0.5
l=$(req ALICEPHONE alice -H "Authorization: Bearer $good")
want "$l" decision allow "a signed Bearer token for alice on alice's device"
want "$l" credential bearer "a checked Bearer token"
l=$(req ALICEPHONE alice -H "Authorization: Bearer $(jwt "$TMP/evil.key" alice 600)")
want "$l" reason identity-unverifiable "a Bearer token signed by another key"
l=$(req ALICEPHONE alice -H "Authorization: Bearer $(jwt "$TMP/idp.key" alice -600)")
want "$l" reason identity-unverifiable "an expired Bearer token"
l=$(req ALICEPHONE alice -H "Authorization: Bearer $(jwt "$TMP/idp.key" bob 600)")
want "$l" reason user-mismatch "bob's signed token on alice's device"
grep -q "Bearer tokens checked against" "$TMP/proxy.log" || eg_fail "the key set's load is not logged"
echo "Bearer: signed tokens believed, forged and expired ones not"

# 5. Sightings wait for Exchange: a refused request leaves no trace, an
# accepted one is reported with auth=exchange, a blocked one without auth.
printf 'unknown_devices: allow\n' >"$TMP/policy.yaml"
kill -HUP "$proxy_pid"
sleep 0.5
req NEWDEV1 alice -H "Authorization: Basic $(b64 alice:wrong)" >/dev/null
req NEWDEV2 alice -H "Authorization: Basic $(b64 alice:pw-a)" >/dev/null
printf 'unknown_devices: block\n' >"$TMP/policy.yaml"
kill -HUP "$proxy_pid"
sleep 0.5
req NEWDEV3 alice -H "Authorization: Basic $(b64 alice:pw-a)" >/dev/null
sleep 0.3
s=$(R XRANGE easgate:sightings - + | tr '\n' ' ')
grep -q NEWDEV1 <<<"$s" && eg_fail "a request Exchange refused was reported: $s"
grep -Eq 'NEWDEV2 .*auth exchange' <<<"$s" || eg_fail "an accepted unknown device is not reported with auth=exchange: $s"
grep -q NEWDEV3 <<<"$s" || eg_fail "a device blocked by the proxy is not reported: $s"
grep -Eq 'NEWDEV3 [^N]*auth exchange' <<<"$s" && eg_fail "a blocked device is reported as authenticated: $s"
echo "sightings: none after 401, auth=exchange after 200, no auth when blocked"

# 6. allow_cert_bound: a client certificate naming the device and its bound
# user stands in for a credential the proxy cannot read.
R HSET easgate:dev:DEVICE0001 state allow user alice reason t version 1 >/dev/null
R HSET easgate:dev:DEVICE0002 state allow user alice reason t version 1 >/dev/null
printf 'unknown_devices: allow\nidentity: { unverifiable: allow_cert_bound }\n' >"$TMP/policy.yaml"
kill -HUP "$proxy_pid"
sleep 0.5
TLS=(--cacert "$CERTS/ca.crt")
CERT=(--cert "$CERTS/device1.crt" --key "$CERTS/device1.key")
BASE="https://localhost:$tlsp_port/Microsoft-Server-ActiveSync"
l=$(BASE=$BASE req DEVICE0001 alice "${TLS[@]}" "${CERT[@]}" -H "Authorization: $krb")
want "$l" decision allow "Kerberos with alice's certificate for DEVICE0001"
l=$(BASE=$BASE req DEVICE0001 alice "${TLS[@]}" -H "Authorization: $krb")
want "$l" reason identity-unverifiable "Kerberos without a certificate on a bound device"
l=$(BASE=$BASE req DEVICE0002 alice "${TLS[@]}" "${CERT[@]}" -H "Authorization: $krb")
want "$l" reason cert-mismatch "Kerberos with a certificate for another device"
echo "allow_cert_bound: the certificate vouches for device and user"

eg_stop_clean proxy
eg_pass "the identity rule holds through the proxy"
