#!/usr/bin/env bash
# The proxy provisions phones itself (provisioning: mode: proxy), driven by
# the project's scripted client (build/easclient) against the real proxy, a
# real redis-server and the Exchange simulator:
#   - no policy key: 142 (14.1) / HTTP 449 (12.1), nothing reaches Exchange;
#   - Provision: the download carries an EASProvisionDoc with our settings and
#     a temporary key; the acknowledgement gets the final key; DeviceInformation
#     lands in easgate:sightings;
#   - the final key passes (X-MS-PolicyKey is not forwarded); a stale key
#     gets 144; a key that is not a number gets 144 and a log line;
#   - bad input: an acknowledgement of a key never issued (Policy Status 5),
#     a Provision body that is not WBXML (Status 2): each logged, no key;
#   - a second proxy computes the same keys (shared without a Redis write);
#   - passthrough mode: Provision reaches Exchange;
#   - with the core: each final key is a "provisioned" sighting; the proxy
#     answered the Provision itself, so nobody authenticated it: the core
#     keeps a new device pending, with its key, and registers it (key
#     carried over: registry and device hash) once Exchange answers one of
#     its requests 2xx; `easgate core device reprovision`
#     bumps that device's pk_epoch, its key gets 144 and it provisions again
#     to a new key, while another device's key still passes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
for b in easgate exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

lport=$(eg_port); aport=$(eg_port); lport2=$(eg_port); aport2=$(eg_port)
lport3=$(eg_port); aport3=$(eg_port)
eg_redis
eg_exsim

cat >"$TMP/policy.yaml" <<EOF
unknown_devices: allow
provisioning:
  mode: proxy
  eas_policy:
    device_password_enabled: true
    min_device_password_length: 6
    max_device_password_failed_attempts: 8
    require_device_encryption: true
    allow_camera: false
    max_email_age_filter: 2w
EOF
cat >"$TMP/passthrough.yaml" <<EOF
unknown_devices: allow
provisioning: { mode: passthrough }
EOF
conf() { # FILE LISTEN ADMIN POLICY
  cat >"$1" <<EOF
proxy:
  workers: 2
  admin_listen: 127.0.0.1:$3
  instances:
    - name: t
      listen: 127.0.0.1:$2
      upstream:
        url: http://127.0.0.1:$exsim_port
policy: $4
log: { access: access-$2.log, error: "-", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
  sighting_interval: 1s
EOF
}
conf "$TMP/a.yaml" "$lport" "$aport" policy.yaml
conf "$TMP/b.yaml" "$lport2" "$aport2" policy.yaml
conf "$TMP/c.yaml" "$lport3" "$aport3" passthrough.yaml
eg_stack proxy "$TMP/a.yaml"
eg_stack -n proxy2 proxy "$TMP/b.yaml"
eg_stack -n proxy3 proxy "$TMP/c.yaml"

EC() { "$BUILD/easclient" --user alice --device "${DEV:-DEVP1}" "$@"; }
at() { local port=$1; shift; EC --url "http://127.0.0.1:$port" "$@"; }
cat >"$TMP/fs0.xml" <<'EOF'
<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>
EOF

# 1. no policy key: 142 at 14.1, HTTP 449 at 12.1; Exchange never sees it
out=$(at "$lport" --show-headers FolderSync "$TMP/fs0.xml")
grep -q '<Status>142</Status>' <<<"$out" || eg_fail "no key at 14.1: want Status 142, got: $out"
grep -qi 'X-Exsim' <<<"$out" && eg_fail "an unprovisioned request reached Exchange"
out=$(at "$lport" --version 12.1 FolderSync "$TMP/fs0.xml")
head -1 <<<"$out" | eg_has 'HTTP 449' || eg_fail "no key at 12.1: want HTTP 449, got: $out"
eg_pass "unprovisioned: 142 / 449"

# 2. Provision, both phases, with DeviceInformation
out=$(EASCLIENT_SHOW=1 at "$lport" provision --devinfo "iPhone15,2") || eg_fail "provision failed: $out"
grep -q 'document=yes' <<<"$out" || eg_fail "download without EASProvisionDoc: $out"
grep -q '<MinDevicePasswordLength>6</MinDevicePasswordLength>' <<<"$out" ||
  eg_fail "EASProvisionDoc lacks MinDevicePasswordLength 6: $out"
grep -q '<AllowCamera>0</AllowCamera>' <<<"$out" || eg_fail "EASProvisionDoc lacks AllowCamera 0"
grep -q '<MaxEmailAgeFilter>4</MaxEmailAgeFilter>' <<<"$out" || eg_fail "MaxEmailAgeFilter 2w != 4"
key=$(echo "$out" | sed -n 's/^policy_key=//p')
tmpkey=$(echo "$out" | sed -n 's/.*temporary_key=\([0-9]*\).*/\1/p')
[ -n "$key" ] && [ "$key" != "$tmpkey" ] || eg_fail "no final key distinct from the temporary one: $out"
eg_pass "Provision: download (temporary key $tmpkey) and acknowledgement (final key $key)"
for _ in $(seq 30); do
  redis-cli -p "$redis_port" XRANGE easgate:sightings - + | eg_has 'iPhone15,2' && break
  sleep 0.1
done
redis-cli -p "$redis_port" XRANGE easgate:sightings - + | eg_has 'iPhone15,2' ||
  eg_fail "DeviceInformation from Provision not in easgate:sightings"
eg_pass "DeviceInformation in the sightings stream"

# 3. the final key passes (and on the other proxy too); stale and bad keys do not
out=$(at "$lport" --show-headers --policy-key "$key" FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "final key did not reach Exchange: $out"
out=$(at "$lport2" --show-headers --policy-key "$key" FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "the second proxy refused the key: $out"
out=$(at "$lport" --policy-key "$tmpkey" FolderSync "$TMP/fs0.xml")
grep -q '<Status>144</Status>' <<<"$out" || eg_fail "temporary key used as final: want 144: $out"
out=$(at "$lport" --version 12.1 --policy-key 12345 FolderSync "$TMP/fs0.xml")
head -1 <<<"$out" | eg_has 'HTTP 449' || eg_fail "stale key at 12.1: want 449: $out"
out=$(at "$lport" --header "X-MS-PolicyKey: abc" FolderSync "$TMP/fs0.xml")
grep -q '<Status>144</Status>' <<<"$out" || eg_fail "non-numeric key: want 144: $out"
grep -q 'policy key is not a number' "$TMP/proxy.log" || eg_fail "no log line for the bad key"
out=$(at "$lport" --base64 --policy-key "$key" FolderSync "$TMP/fs0.xml")
grep -q '<Status>14[24]</Status>' <<<"$out" && eg_fail "base64 form: final key refused: $out"
eg_pass "policy keys: final passes on both proxies; temporary, stale, non-numeric refused"

# 4. bad input: ack of a key never issued; a Provision body that is not WBXML
out=$(at "$lport" provision --ack-key 424242) && eg_fail "ack of an unknown key succeeded: $out"
grep -q 'policy_status=5' <<<"$out" || eg_fail "unknown key ack: want Policy Status 5: $out"
grep -q 'never issued' "$TMP/proxy.log" || eg_fail "no log line for the unknown key"
printf 'this is not wbxml' >"$TMP/junk"
out=$(at "$lport" --raw "$TMP/junk" Provision)
grep -q '<Status>2</Status>' <<<"$out" || eg_fail "junk Provision: want Status 2: $out"
grep -q PolicyKey <<<"$out" && eg_fail "junk Provision got a key"
grep -q 'Provision body: WBXML error' "$TMP/proxy.log" || eg_fail "no log line for the junk Provision"
eg_pass "bad input: unknown key (Policy Status 5), junk body (Status 2), logged"

# 5. passthrough: Exchange provisions, the proxy only watches
out=$(DEV=DEVP3 at "$lport3" provision --devinfo "Pixel 8") || true
grep -q '"decision":"provision"' "$TMP/access-$lport3.log" 2>/dev/null &&
  eg_fail "passthrough mode answered Provision itself"
out=$(DEV=DEVP3 at "$lport3" --show-headers Provision "$TMP/fs0.xml" || true)
out=$(DEV=DEVP3 at "$lport3" --show-headers FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "passthrough: FolderSync without key refused"
eg_pass "passthrough mode leaves provisioning to Exchange"

# 6. X-MS-PolicyKey never reaches Exchange in proxy mode: a recording upstream
rec=$(eg_port); lport4=$(eg_port); aport4=$(eg_port)
cat >"$TMP/rec.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', '0')))
        with open(sys.argv[2], 'a') as f:
            f.write(str(self.headers) + "----\n")
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
PY
eg_start recorder python3 "$TMP/rec.py" "$rec" "$TMP/rec.txt"
eg_wait_port "$rec"
sed "s/127.0.0.1:$exsim_port/127.0.0.1:$rec/" "$TMP/a.yaml" >"$TMP/d.yaml"
sed -i "s/127.0.0.1:$lport\$/127.0.0.1:$lport4/; s/127.0.0.1:$aport\$/127.0.0.1:$aport4/" "$TMP/d.yaml"
eg_stack -n proxy4 proxy "$TMP/d.yaml"
out=$(at "$lport4" --policy-key "$key" FolderSync "$TMP/fs0.xml")
head -1 <<<"$out" | eg_has 'HTTP 200' || eg_fail "recording upstream: $out"
grep -qi '^MS-ASProtocolVersion' "$TMP/rec.txt" || eg_fail "the recorder saw no request"
grep -qi '^X-MS-PolicyKey' "$TMP/rec.txt" && eg_fail "X-MS-PolicyKey was forwarded to Exchange"
eg_pass "proxy mode: X-MS-PolicyKey is not forwarded"

# 7. tracked per device by the core; reprovision one device
cat >"$TMP/core-policy.yaml" <<EOF
unknown_devices: allow
compliance:
  unmanaged_devices: allow
EOF
cat >"$TMP/core.yaml" <<EOF
policy: core-policy.yaml
log: { error: "-", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
core:
  database: registry.db
  tick: 200ms
EOF
CC=(-c "$TMP/core.yaml")
eg_stack core "$TMP/core.yaml"
for _ in $(seq 100); do grep -q "core: reading easgate:sightings" "$TMP/core.log" && break; sleep 0.1; done
grep -q "core: reading easgate:sightings" "$TMP/core.log" || eg_fail "core did not start"
R() { redis-cli -p "$redis_port" "$@"; }
wait_field() { # KEY FIELD VALUE
  for _ in $(seq 50); do [ "$(R HGET "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
  eg_fail "$1 $2 is '$(R HGET "$1" "$2")', want '$3'"
}
k7=$(DEV=DEVP7 at "$lport" --version 16.1 provision | sed -n 's/^policy_key=//p')
k8=$(DEV=DEVP8 at "$lport" provision | sed -n 's/^policy_key=//p')
[ -n "$k7" ] && [ -n "$k8" ] || eg_fail "provision of DEVP7/DEVP8 failed"
pend() { "$BUILD/easgate" core pending "${CC[@]}" 2>/dev/null | eg_has "^$1 "; }
for _ in $(seq 50); do pend DEVP7 && pend DEVP8 && break; sleep 0.1; done
pend DEVP7 && pend DEVP8 || eg_fail "the devices the proxy provisioned are not pending"
[ "$(R EXISTS easgate:dev:DEVP7)" = 0 ] || eg_fail "an unauthenticated Provision made a device hash"
# Exchange answers 2xx: registered, the key carried over.
out=$(DEV=DEVP7 at "$lport" --show-headers --version 16.1 --policy-key "$k7" FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "DEVP7 with its key: $out"
out=$(DEV=DEVP8 at "$lport" --show-headers --policy-key "$k8" FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "DEVP8 with its key: $out"
wait_field easgate:dev:DEVP7 policy_key "$k7"
wait_field easgate:dev:DEVP8 policy_key "$k8"
R XRANGE easgate:sightings - + | tr '\n' ' ' | eg_has "provisioned device DEVP7" ||
  eg_fail "no provisioned sighting for DEVP7"
"$BUILD/easgate" core device show DEVP7 "${CC[@]}" >"$TMP/show7.txt"
grep -q "policy_key: *$k7 (provisioned 20" "$TMP/show7.txt" ||
  eg_fail "core device show: $(cat "$TMP/show7.txt")"
grep -q "eas_version: *16.1" "$TMP/show7.txt" || eg_fail "core device show: no eas_version 16.1"
eg_pass "issued keys tracked: provisioned sightings, registry and device hash show them"

"$BUILD/easgate" core device reprovision DEVP7 "${CC[@]}" >/dev/null || eg_fail "reprovision failed"
wait_field easgate:dev:DEVP7 pk_epoch 1
stale7() { # PORT: the old key gets 144 once the proxy has the new epoch (pub/sub, < 3 s)
  for _ in $(seq 30); do
    out=$(DEV=DEVP7 at "$1" --version 16.1 --policy-key "$k7" FolderSync "$TMP/fs0.xml")
    grep -q '<Status>144</Status>' <<<"$out" && return 0
    sleep 0.1
  done
  return 1
}
stale7 "$lport" || eg_fail "reprovisioned device kept its key: $out"
stale7 "$lport2" || eg_fail "second proxy: old key still passes: $out"
out=$(DEV=DEVP8 at "$lport" --show-headers --policy-key "$k8" FolderSync "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "another device lost its key: $out"
k7b=$(DEV=DEVP7 at "$lport2" --version 16.1 provision | sed -n 's/^policy_key=//p')
[ -n "$k7b" ] && [ "$k7b" != "$k7" ] || eg_fail "reprovision gave no new key ($k7b)"
out=$(DEV=DEVP7 at "$lport" --show-headers --version 16.1 --policy-key "$k7b" FolderSync \
  "$TMP/fs0.xml")
grep -qi '^X-Exsim-Cmd: FolderSync' <<<"$out" || eg_fail "the new key does not pass: $out"
wait_field easgate:dev:DEVP7 policy_key "$k7b"
eg_pass "reprovision: only that device gets 144, provisions again (key $k7 -> $k7b)"

! grep -l "Sanitizer" "$TMP"/*.log 2>/dev/null || eg_fail "sanitizer report in a log"
