# test_init: `easgate init` writes a working set and refuses what it must.
#   - --dir: every file with its mode; `easgate check` passes right after and
#     `easgate run` starts (proxy, core and enrollment answer);
#   - --csr: a request for the public name, signed by the server key, and a
#     self-signed stand-in;
#   - bad input: usage errors (exit 2: neither or both of --dir/--system, no
#     --upstream, an upstream with a path or another scheme, a bad host or
#     listen address), a weak or missing password (exit 1, nothing written),
#     an existing key or registry (exit 1, nothing changed), --system as a
#     non-root user, an edited easgate.yaml kept.
# About 10 s (each run hashes a password with argon2).
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
PW=correct-horse-battery
# init_rc WANT ARGS...: easgate init with the password on stdin
init_rc() {
  local want=$1 rc=0; shift
  echo "${INIT_PW-$PW}" | "$EG" init "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want" ] || eg_fail "init $*: exit $rc, want $want: $(cat "$TMP/err")"
}
U=http://127.0.0.1:9

init_rc 2 --upstream "$U"
grep -q "give either --dir DIR or --system" "$TMP/err" && grep -q "^usage: easgate init" "$TMP/err" ||
  eg_fail "neither --dir nor --system: $(cat "$TMP/err")"
init_rc 2 --dir "$TMP/x" --system --upstream "$U"
init_rc 2 --dir "$TMP/x"
grep -q -- "--upstream URL is required" "$TMP/err" || eg_fail "no upstream: $(cat "$TMP/err")"
for bad in "https://ex.example.com/owa" "ftp://ex.example.com" "exchange.example.com" "https://" \
           "https://a@b" "https://ex ample"; do
  init_rc 2 --dir "$TMP/x" --upstream "$bad"
  grep -q "give https://host\[:port\]" "$TMP/err" || eg_fail "upstream '$bad': $(cat "$TMP/err")"
done
init_rc 2 --dir "$TMP/x" --upstream "$U" --public-host 'mail example.com'
init_rc 2 --dir "$TMP/x" --upstream "$U" --listen 'nowhere:443'
init_rc 2 --dir "$TMP/x" --upstream "$U" --nosuch
[ ! -e "$TMP/x" ] || eg_fail "a usage error created $TMP/x"
eg_pass "usage errors exit 2 with the usage, before anything is written"

INIT_PW=short init_rc 1 --dir "$TMP/x" --upstream "$U" --public-host localhost
grep -q "at least 12 characters" "$TMP/err" || eg_fail "weak password: $(cat "$TMP/err")"
INIT_PW=admin-is-my-password init_rc 1 --dir "$TMP/x" --upstream "$U" --public-host localhost
grep -q "contains the account name" "$TMP/err" || eg_fail "name in password: $(cat "$TMP/err")"
rc=0; "$EG" init --dir "$TMP/x" --upstream "$U" --public-host localhost </dev/null >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "no password given" "$TMP/err" || eg_fail "empty stdin: exit $rc: $(cat "$TMP/err")"
[ ! -e "$TMP/x" ] || eg_fail "a refused password left $TMP/x behind"
eg_pass "a weak or missing password stops init before anything is written"

D=$TMP/site
P_PROXY=$(eg_port)
init_rc 0 --dir "$D" --upstream "$U" --public-host localhost --admin root --listen "127.0.0.1:$P_PROXY"
for f in tls/server.key tls/admin.key ca/device-ca.key registry.db admin.yaml; do
  [ "$(stat -c %a "$D/$f")" = 600 ] || [ "$(stat -c %a "$D/$f")" = 640 ] ||
    eg_fail "$f has mode $(stat -c %a "$D/$f")"
done
[ "$(stat -c %a "$D/ca/device-ca.key")" = 600 ] || eg_fail "the CA key is not 0600"
[ "$(stat -c %a "$D/registry.db")" = 600 ] || eg_fail "the registry is not 0600"
[ "$(stat -c %a "$D/ca")" = 700 ] || eg_fail "ca/ is not 0700"
grep -q "DNS:localhost" <<<"$(openssl x509 -in "$D/tls/server.crt" -noout -ext subjectAltName 2>/dev/null)" ||
  eg_fail "the server certificate is not for localhost"
grep -q "verify OK" <<<"$(openssl crl -inform DER -in "$D/ca/device-ca.crl" -noout -CAfile "$D/ca/device-ca.crt" 2>&1)" ||
  eg_fail "the CRL does not verify against the device CA"
grep -q "^next steps:" "$TMP/out" && [ "$(grep -c "^  [123]\. " "$TMP/out")" = 3 ] ||
  eg_fail "no three next steps: $(cat "$TMP/out")"
eg_pass "--dir writes keys (0600/0640), certificates, a CA with a verifying CRL, the registry, three next steps"

P_ADMIN=$(eg_port) P_CORE=$(eg_port) P_ENROLL=$(eg_port)
eg_redis
sed -i -e "s/127.0.0.1:9090/127.0.0.1:$P_ADMIN/" -e "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" \
  -e "s/0.0.0.0:8444/127.0.0.1:$P_ENROLL/" -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$redis_port/0#" \
  "$D/easgate.yaml"
"$EG" check -q -c "$D/easgate.yaml" >/dev/null 2>"$TMP/err" || eg_fail "check after init: $(cat "$TMP/err")"
eg_stack run "$D/easgate.yaml"
curl -fsS "http://127.0.0.1:$P_ADMIN/healthz" >/dev/null || eg_fail "proxy /healthz"
curl -fsS --cacert "$D/tls/admin.crt" "https://127.0.0.1:$P_CORE/healthz" >/dev/null || eg_fail "core /healthz"
curl -sS -o /dev/null --cacert "$D/tls/server.crt" "https://localhost:$P_ENROLL/" || eg_fail "enrollment TLS"
T=$(echo "$PW" | EASGATE_ADMIN_CONFIG=$D/admin.yaml EASGATE_URL="https://127.0.0.1:$P_CORE" \
  "$EG" admin login --user root) || eg_fail "the first admin cannot log in"
eg_stop_clean run
eg_pass "right after init: check passes, run starts, the first admin logs in"

# Existing keys and registry: refused, nothing changed.
sum() { (cd "$D" && find . -type f ! -name '*.log' -exec sha256sum {} + | sort); }
before=$(sum)
init_rc 1 --dir "$D" --upstream "$U" --public-host localhost --admin root
grep -q "$D/ca/device-ca.key exists" "$TMP/err" && grep -q "$D/registry.db exists" "$TMP/err" &&
  grep -q "nothing written" "$TMP/err" || eg_fail "second init: $(cat "$TMP/err")"
[ "$(sum)" = "$before" ] || eg_fail "a refused init changed files"
rm "$D/tls/server.key"
init_rc 1 --dir "$D" --upstream "$U" --public-host localhost --admin root
[ -e "$D/tls/server.key" ] && eg_fail "a refused init wrote the missing key"
eg_pass "an existing key or registry stops init, nothing written or changed"

# An edited easgate.yaml is kept; --csr.
D2=$TMP/csr
mkdir -p "$D2" && printf 'proxy: {}\n# mine\n' >"$D2/easgate.yaml"
init_rc 1 --dir "$D2" --upstream "$U" --public-host mail.example.com --csr
grep -q "kept $D2/easgate.yaml (it exists and was edited)" "$TMP/err" || eg_fail "edited file: $(cat "$TMP/err")"
grep -q "# mine" "$D2/easgate.yaml" || eg_fail "the edited easgate.yaml was replaced"
grep -q "stopped, no key written" "$TMP/err" || eg_fail "kept file that does not load: $(cat "$TMP/err")"
[ ! -e "$D2/tls/server.key" ] || eg_fail "keys written although the kept file does not load"
rm -rf "$D2"
init_rc 0 --dir "$D2" --upstream "$U" --public-host mail.example.com --csr
grep -qi "verify OK" <<<"$(openssl req -in "$D2/tls/server.csr" -noout -verify 2>&1)" || eg_fail "CSR signature"
grep -q "DNS:mail.example.com" <<<"$(openssl req -in "$D2/tls/server.csr" -noout -text)" || eg_fail "CSR names"
[ "$(openssl req -in "$D2/tls/server.csr" -noout -pubkey | sha256sum)" = \
  "$(openssl pkey -in "$D2/tls/server.key" -pubout | sha256sum)" ] || eg_fail "CSR key is not server.key"
grep -q "have $D2/tls/server.csr signed" "$TMP/out" || eg_fail "no CSR step printed"
eg_pass "an edited easgate.yaml is kept (one that does not load stops init before any key); --csr writes a request for the host"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  rc=0
  echo "$PW" | setpriv --reuid=nobody --regid=nogroup --clear-groups "$EG" init --system \
    --upstream "$U" >/dev/null 2>"$TMP/err" || rc=$?
  [ "$rc" = 1 ] && grep -q "run it as root" "$TMP/err" || eg_fail "--system as nobody: exit $rc $(cat "$TMP/err")"
  eg_pass "--system as another user than root is refused"
fi
