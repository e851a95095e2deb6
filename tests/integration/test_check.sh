# test_check: `easgate check` as an admin uses it. The shipped examples pass
# and print every effective setting; broken files exit 2 with FILE:LINE:COL;
# missing certificate files and usage errors are refused.
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
[ -x "$EG" ] || eg_fail "no $EG"

# The examples point at ../certs/dev relative to conf/: build that layout.
mkdir -p "$TMP/site/conf"
cp "$SRC/conf/easgate.yaml" "$SRC/conf/policy.yaml" "$TMP/site/conf/"
bash "$SRC/certs/mkcerts" "$TMP/site/certs/dev" >/dev/null || eg_fail "mkcerts failed"
# check binds the listeners to see they are free: give the example's fixed
# ports (8443, 9090) free ones, as tests run side by side; and exchange.example.com
# does not resolve, so --offline (test_check_env covers resolution and binding).
sed -i -e "s/0.0.0.0:8443/127.0.0.1:$(eg_port)/" -e "s/127.0.0.1:9090/127.0.0.1:$(eg_port)/" \
  "$TMP/site/conf/easgate.yaml"
EG_CHECK() { "$EG" check --offline "$@"; }

out=$(EG_CHECK -c "$TMP/site/conf/easgate.yaml" 2>"$TMP/check.err") ||
  eg_fail "example config rejected: $(cat "$TMP/check.err")"
for want in "workers: 2" "header: 15s" "max_body_read: 64k" "long_poll_margin: 60s" \
            "url: \"https://exchange.example.com\"" "max_stale: 24h" "lookup_timeout: 50ms" \
            "unknown_devices: allow" "action: block" "allow_subscriptions: false"; do
  grep -qF -- "$want" <<<"$out" || eg_fail "effective settings lack '$want'"
done
grep -q "configuration OK" "$TMP/check.err" || eg_fail "no OK line"
eg_pass "example easgate.yaml and policy.yaml pass and print effective settings"

# The three starting points (docs/access-model.md) pass with the example
# configuration (strict: with client certificates required) and print the
# effective decision for each kind of device.
for mode in rollout:allow:allow enforce:quarantine:quarantine strict:block:block; do
  IFS=: read -r name unknown unmanaged <<<"$mode"
  cp "$SRC/conf/policy-$name.yaml" "$TMP/site/conf/"
  sed "s/^policy: policy.yaml/policy: policy-$name.yaml/" "$TMP/site/conf/easgate.yaml" \
    >"$TMP/site/conf/$name.yaml"
  [ "$name" = strict ] && sed -i 's/required: false/required: true/' "$TMP/site/conf/$name.yaml"
  out=$(EG_CHECK -c "$TMP/site/conf/$name.yaml" 2>"$TMP/check.err") ||
    eg_fail "conf/policy-$name.yaml rejected: $(cat "$TMP/check.err")"
  for want in "unknown device (not in Redis): *$unknown " "unmanaged device (never enrolled): *$unmanaged " \
              "non-compliant device: " "quarantined device: .*until an admin allows or blocks it"; do
    grep -q -- "^#   $want" <<<"$out" || eg_fail "conf/policy-$name.yaml: no '$want' in: $(grep '^#   ' <<<"$out")"
  done
done
grep -q "required: true" "$TMP/site/conf/strict.yaml" || eg_fail "strict does not require client certificates"
eg_pass "the rollout, enforce and strict policies pass and print their effective decisions"

# A contradiction between the proxy's and the core's default is refused
# with its position and the fix.
printf 'unknown_devices: allow\ncompliance:\n  unmanaged_devices: block\n' >"$TMP/site/conf/contra.yaml"
rc=0; EG_CHECK -p "$TMP/site/conf/contra.yaml" >"$TMP/out" 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] || eg_fail "a contradiction exits $rc, want 2"
grep -qF "contra.yaml:3:22: unmanaged_devices: block contradicts unknown_devices: allow (line 1)" "$TMP/err" ||
  eg_fail "contradiction: $(cat "$TMP/err")"
grep -qF "remove unmanaged_devices (it follows unknown_devices)" "$TMP/err" || eg_fail "no fix given: $(cat "$TMP/err")"
eg_pass "check refuses unknown_devices and unmanaged_devices that contradict each other"

# -c reads the configuration and the policy it names together, core
# section included: the policy's contradiction is refused through -c too,
# and the effective decisions are printed for the core's configuration.
core_conf() { # NAME POLICY-LINE: a core's configuration (no proxy)
  printf 'log: { level: info }\nredis:\n  url: redis://127.0.0.1:6379/0\n%s\ncore:\n  database: r.db\n' \
    "$2" >"$TMP/site/conf/$1"
}
core_conf core-contra.yaml "policy: contra.yaml"
rc=0; EG_CHECK -c "$TMP/site/conf/core-contra.yaml" >"$TMP/out" 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] && grep -qF "contra.yaml:3:22: unmanaged_devices: block contradicts" "$TMP/err" ||
  eg_fail "-c with a core section: the policy's contradiction not refused (exit $rc): $(cat "$TMP/err")"
core_conf core-enforce.yaml "policy: policy-enforce.yaml"
out=$(EG_CHECK -c "$TMP/site/conf/core-enforce.yaml" 2>"$TMP/err") || eg_fail "core + enforce: $(cat "$TMP/err")"
for want in "database: \".*r.db\"" "#   unknown device (not in Redis): *quarantine " \
            "#   unmanaged device (never enrolled): *quarantine " "#   non-compliant device: " \
            "#   quarantined device: "; do
  grep -q -- "$want" <<<"$out" || eg_fail "core + enforce: no '$want' in the output"
done
# A core with no policy file: the defaults an empty policy gives (allow),
# said with the position of its section and the fix, and printed.
core_conf core-nopol.yaml ""
out=$(EG_CHECK -c "$TMP/site/conf/core-nopol.yaml" 2>"$TMP/err") || eg_fail "core without policy: $(cat "$TMP/err")"
grep -qF "core-nopol.yaml:6:3: warning: core: no policy file: unmanaged devices get the defaults" "$TMP/err" &&
  grep -qF 'add `policy: policy.yaml` at the top' "$TMP/err" || eg_fail "no warning for a core without policy: $(cat "$TMP/err")"
for want in "unknown device (not in Redis): *allow " "unmanaged device (never enrolled): *allow "; do
  grep -q -- "^#   $want" <<<"$out" || eg_fail "core without policy: no '$want' in: $(grep '^#   ' <<<"$out")"
done
eg_pass "check -c: the core section and the policy it names together; a core without a policy is warned about"

EG_CHECK -q -p "$TMP/site/conf/policy.yaml" >"$TMP/q.out" 2>&1 || eg_fail "policy alone rejected"
[ ! -s "$TMP/q.out" ] || eg_fail "-q printed something"
eg_pass "check -q -p policy"

# expect_fail NAME WANT: the file $TMP/site/conf/NAME must fail with WANT.
expect_fail() {
  local file=$1 want=$2 rc=0
  EG_CHECK -c "$file" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = 2 ] || eg_fail "$file: exit $rc, want 2 ($(cat "$TMP/err"))"
  grep -qF -- "$want" "$TMP/err" || eg_fail "$file: error '$(cat "$TMP/err")' lacks '$want'"
}

c=$TMP/site/conf
sed 's/^  workers: 2 /  worker: 2 /' "$c/easgate.yaml" >"$c/typo.yaml"
expect_fail "$c/typo.yaml" "$c/typo.yaml:11:3: unknown key 'worker' (did you mean 'workers'?)"

sed 's/header: 15s/header: 15/' "$c/easgate.yaml" >"$c/unit.yaml"
expect_fail "$c/unit.yaml" "unit.yaml:16:13: header: bad duration '15': missing unit"

sed 's/^policy: policy.yaml/policy: bad-policy.yaml/' "$c/easgate.yaml" >"$c/badpol.yaml"
sed 's/^user_agents:/user_agent:/' "$c/policy.yaml" >"$c/bad-policy.yaml"
expect_fail "$c/badpol.yaml" "bad-policy.yaml:22:1: unknown key 'user_agent' (did you mean 'user_agents'?)"

sed 's/^policy: policy.yaml/policy: nowhere.yaml/' "$c/easgate.yaml" >"$c/nopol.yaml"
expect_fail "$c/nopol.yaml" "nowhere.yaml: cannot open"

printf 'proxy:\n  instances: [\n' >"$c/syntax.yaml"
expect_fail "$c/syntax.yaml" "syntax.yaml:3:1: YAML syntax error"

sed 's#proxy.crt#missing.crt#' "$c/easgate.yaml" >"$c/nocert.yaml"
expect_fail "$c/nocert.yaml" "proxy.instances[0].tls.cert: cannot read"

# the certificate must load and the key match it, as the proxy will check
sed 's#proxy.key#exsim.key#' "$c/easgate.yaml" >"$c/wrongkey.yaml"
expect_fail "$c/wrongkey.yaml" "instance main: $TMP/site/conf/../certs/dev/exsim.key: cannot load private key"
grep -q "mismatch" "$TMP/err" || eg_fail "wrong key: the error does not say the key does not match"
cp "$c/easgate.yaml" "$c/badcert.yaml"
sed -i "s#cert: ../certs/dev/proxy.crt#cert: $TMP/garbage.crt#" "$c/badcert.yaml"
echo "not a certificate" >"$TMP/garbage.crt"
expect_fail "$c/badcert.yaml" "instance main: $TMP/garbage.crt: cannot load certificate"

cat >"$c/trusted.yaml" <<'YAML'
proxy:
  instances:
    - name: main
      listen: 127.0.0.1:8443
      trusted_proxies: ["10.0.0.0/8", "10.1.2.3/8"]
      upstream: { url: http://127.0.0.1:8080 }
YAML
expect_fail "$c/trusted.yaml" "trusted.yaml:5:39: trusted_proxies: '10.1.2.3/8' has host bits set"
sed -i 's#"10.1.2.3/8"#"2001:db8::/129"#' "$c/trusted.yaml"
expect_fail "$c/trusted.yaml" "trusted.yaml:5:39: trusted_proxies: '2001:db8::/129': prefix length must be 0 to 128"
sed -i 's#"2001:db8::/129"#"lb.example.com"#' "$c/trusted.yaml"
expect_fail "$c/trusted.yaml" "trusted.yaml:5:39: trusted_proxies: 'lb.example.com' is not an IP address or network"

sed 's/level: info /level: loud /' "$c/easgate.yaml" >"$c/enum.yaml"
expect_fail "$c/enum.yaml" "level: bad value 'loud' (allowed: error, warn, info, debug)"

expect_fail "$TMP/absent.yaml" "absent.yaml: cannot open"

printf 'core:\n  databse: reg.db\n' >"$c/core.yaml"
expect_fail "$c/core.yaml" "core.yaml:2:3: unknown key 'databse' (did you mean 'database'?)"
eg_pass "broken files exit 2 with FILE:LINE:COL"

sed 's/verify: true /verify: false/' "$c/easgate.yaml" >"$c/noverify.yaml"
EG_CHECK -q -c "$c/noverify.yaml" 2>"$TMP/err" || eg_fail "verify: false rejected"
grep -q "warning: instance 'main': upstream.verify is false" "$TMP/err" || eg_fail "no warning"
eg_pass "verify: false passes with a warning"

rc=0; "$EG" check >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || eg_fail "no arguments: exit $rc"
rc=0; "$EG" check -c a -p b >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || eg_fail "-c and -p: exit $rc"
eg_pass "usage errors exit 2"
