# The stack of the binding-on-first-use tests, sourced after lib.sh by
# test_enroll_bind.sh (curl) and test_browser_enroll.sh (the console and the
# portal in chromium): Redis, exsim with TLS, the core with the enrollment
# portal on $EN (profiles signed), and a proxy instance on $PX that requires
# a client certificate of the device CA. Works under `set -u` and `set -e`.
#   eb_setup [CORE-LINES]  cd $TMP, write easgate.yaml (CORE-LINES: more
#                          lines under core:, indented by two), make the
#                          device CA and its CRL; CERTS is the dev PKI
#                          (made here unless the test made it first)
#   eb_start               the core (until it reads the sightings), then the proxy
#   eb_pem NAME P12 PW     NAME.crt and NAME.key from a PKCS#12 and its password
#   eb_enrollment NAME     the enrollment id NAME.crt names (SAN urn:easgate:enrollment:ID)
#   eb_sync NAME DEVICEID  a FolderSync of user alice as DEVICEID with NAME.crt:
#                          out = the HTTP code, fwd = 1 when exsim answered
#   eb_first_sync NAME DEVICEID
#                          eb_sync until exsim answers (5 tries): until the
#                          proxy's Redis link is up, a portal certificate
#                          fails closed (cert-binding-unavailable)
#   eb_last_reason         the reason of the proxy's last access-log line
#   eb_bound_to ENROLLMENT the DeviceId the registry bound the enrollment to
#   eb_wait_bound ENROLLMENT DEVICEID
#                          waits (15 s at most) until it is that one

eb_setup() {
  local t
  for t in openssl curl python3 redis-cli sqlite3; do command -v $t >/dev/null || exit 77; done
  [ -x "$BUILD/exsim" ] || exit 77
  [ -n "${CERTS:-}" ] || CERTS=$(eg_certs)
  cd "$TMP" || exit 1
  eg_redis
  eg_exsim --tls
  EN=$(eg_port)
  PX=$(eg_port)
  cat >easgate.yaml <<YAML
core:
  database: reg.db
  tick: 200ms
${1:-}
enroll:
  public_host: localhost:$PX
  url: https://127.0.0.1:$EN
  listen: 127.0.0.1:$EN
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
  signing: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
proxy:
  workers: 2
  admin_listen: off
  instances:
    - name: mtls
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      client_auth: { ca: $TMP/device-ca.crt, crl: $TMP/device-ca.crl, required: true }
      upstream: { url: https://localhost:$exsim_port, ca: $CERTS/ca.crt }
log: { access: "$TMP/access.log", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
  sighting_interval: 1h
YAML
  "$BUILD/easgate" core init-ca -c easgate.yaml >init.log 2>&1 || eg_fail "init-ca failed: $(cat init.log)"
  "$BUILD/easgate" core enroll crl -c easgate.yaml >crl.log 2>&1 || eg_fail "no CRL: $(cat crl.log)"
}

eb_start() {
  eg_stack core easgate.yaml
  for _ in $(seq 100); do grep -q "core: reading easgate:sightings" core.log && break; sleep 0.1; done
  eg_stack proxy easgate.yaml
}

eb_pem() {
  openssl pkcs12 -in "$2" -passin "pass:$3" -nokeys -clcerts -out "$1.crt" 2>/dev/null &&
    openssl pkcs12 -in "$2" -passin "pass:$3" -nocerts -nodes -out "$1.key" 2>/dev/null ||
    eg_fail "the PKCS#12 $2 does not open with its password"
}

eb_enrollment() {
  openssl x509 -in "$1.crt" -noout -ext subjectAltName | sed -n 's/.*enrollment:\([A-Z0-9]*\).*/\1/p'
}

printf '\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01' >"$TMP/fs.wbxml"
eb_sync() {
  out=$(curl -s --max-time 10 --cacert "$CERTS/ca.crt" -D hdr -o body -w '%{http_code}' \
    --cert "$1.crt" --key "$1.key" -X POST \
    "https://localhost:$PX/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=$2&DeviceType=Android" \
    -H 'User-Agent: Android-Mail/1' -H 'MS-ASProtocolVersion: 14.1' \
    -H 'Content-Type: application/vnd.ms-sync.wbxml' --data-binary @"$TMP/fs.wbxml" 2>/dev/null) || true
  fwd=0
  grep -qi '^X-Exsim-Cmd:' hdr && fwd=1
  return 0
}

eb_first_sync() {
  for _ in 1 2 3 4 5; do
    eb_sync "$1" "$2"
    [ $fwd = 1 ] && break
    sleep 0.5
  done
}

# The core writes its API's request lines into the same file (log.access):
# the proxy's lines are the ones with a reason.
eb_last_reason() {
  grep '"reason"' access.log | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason"))'
}

eb_bound_to() { sqlite3 reg.db "SELECT device_id FROM enroll_certs WHERE enrollment = '$1'"; }

eb_wait_bound() {
  for _ in $(seq 150); do [ "$(eb_bound_to "$1")" = "$2" ] && return 0; sleep 0.1; done
  return 0
}
