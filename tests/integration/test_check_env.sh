# test_check_env: `easgate check` refuses what the roles would refuse at
# start on this host, and warns about what is risky. Each case starts from a
# file `easgate init --dir` wrote (check passes on it), changes one thing,
# and expects exit 2 with the words that say why, or exit 0 with a warning.
# About 5 s.
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
D=$TMP/site
P_PROXY=$(eg_port) P_UP=$(eg_port)
echo 'correct-horse-battery' | "$EG" init --dir "$D" --upstream "http://127.0.0.1:$P_UP" \
  --public-host localhost --admin root --listen "127.0.0.1:$P_PROXY" >"$TMP/init.log" 2>&1 ||
  eg_fail "init: $(cat "$TMP/init.log")"
P_ADMIN=$(eg_port) P_CORE=$(eg_port) P_ENROLL=$(eg_port)
# Redis on a port nobody serves (check does not connect; the run below retries)
eg_take_port redis
sed -i -e "s/127.0.0.1:9090/127.0.0.1:$P_ADMIN/" -e "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" \
  -e "s/0.0.0.0:8444/127.0.0.1:$P_ENROLL/" -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$redis_port/0#" \
  "$D/easgate.yaml"
"$EG" check -q -c "$D/easgate.yaml" >"$TMP/ok.log" 2>&1 || eg_fail "fresh init: $(cat "$TMP/ok.log")"
eg_pass "a fresh init passes"

# variant NAME SED-EXPRESSION: a copy of the file with one change.
variant() { sed "$2" "$D/easgate.yaml" >"$D/$1.yaml"; echo "$D/$1.yaml"; }
# expect RC WANT FILE [OPTIONS]
expect() {
  local want_rc=$1 want=$2 file=$3 rc=0; shift 3
  "$EG" check -q "$@" -c "$file" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want_rc" ] || eg_fail "$(basename "$file"): exit $rc, want $want_rc: $(cat "$TMP/err")"
  [ -z "$want" ] || eg_has -F -- "$want" "$TMP/err" || eg_fail "$(basename "$file"): '$(cat "$TMP/err")' lacks '$want'"
}

f=$(variant unresolvable "s#http://127.0.0.1:$P_UP#https://exchange.invalid#")
expect 2 "upstream https://exchange.invalid: the host 'exchange.invalid' does not resolve" "$f"
expect 2 "the roles would not start" "$f"
expect 0 "" "$f" --offline
eg_pass "an upstream that does not resolve is an error; --offline skips it"

# The holder prints its own pid: lib.sh's python3 is a function, so $! is
# the subshell that runs it, not the process holding the port.
eg_start holder python3 -c "
import os, socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $P_PROXY)); s.listen(); print(os.getpid(), flush=True); time.sleep(30)"
for _ in $(seq 50); do [ -s "$TMP/holder.log" ] && break; sleep 0.1; done
holder=$(cat "$TMP/holder.log")
EG_PIDS+=("$holder")
expect 2 "proxy.instances[0].listen 127.0.0.1:$P_PROXY: cannot bind: the port is in use by python3 (pid $holder)" "$D/easgate.yaml"
kill "$holder"; for _ in $(seq 50); do kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
f=$(variant twice "s/127.0.0.1:$P_CORE/127.0.0.1:$P_ADMIN/")
expect 2 "core.listen 127.0.0.1:$P_ADMIN: the same port as proxy.admin_listen" "$f"
eg_pass "a port in use (naming its process) and two sections on one port are errors"

# A port held by the easgate this file runs: the reload case, a note only.
eg_stack -n easgate run "$D/easgate.yaml"
expect 0 "is held by easgate (pid $easgate_pid), as when it runs: fine for a reload" "$D/easgate.yaml"
eg_stop_clean easgate
eg_pass "ports held by a running easgate are noted, not refused"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  low=""
  for p in $(seq 1023 -1 900); do [ -z "$(ss -Hltn "sport = :$p")" ] && { low=$p; break; }; done
  f=$(variant lowport "s/127.0.0.1:$P_PROXY/127.0.0.1:$low/")
  chmod 755 "$TMP" "$D" "$D/tls" "$D/ca" && chmod 644 "$f" "$D"/tls/* "$D"/ca/* "$D/policy.yaml"
  rc=0
  setpriv --reuid=nobody --regid=nogroup --clear-groups --bounding-set=-all \
    "$EG" check -q -c "$f" >/dev/null 2>"$TMP/err" || rc=$?
  [ "$rc" = 2 ] || eg_fail "port $low as nobody: exit $rc: $(cat "$TMP/err")"
  grep -q "127.0.0.1:$low: cannot bind: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE" "$TMP/err" ||
    eg_fail "port $low as nobody: $(cat "$TMP/err")"
  chmod 600 "$D"/tls/*.key "$D/ca/device-ca.key"
  eg_pass "a port below 1024 without the capability is an error (checked as nobody)"
fi

f=$(variant plainapi "s/127.0.0.1:$P_CORE/0.0.0.0:$P_CORE/; /^core:/,/^enroll:/{/tls:/d;/cert: /d;/key: /d}")
expect 2 "core.listen 0.0.0.0:$P_CORE: off loopback without core.tls" "$f"
eg_pass "a core listener off loopback without TLS is an error"

mv "$D/ca/device-ca.crl" "$D/ca/saved.crl"
expect 2 "client_auth.crl: cannot read" "$D/easgate.yaml"
mv "$D/ca/saved.crl" "$D/ca/device-ca.crl"
mv "$D/ca/device-ca.key" "$D/ca/saved.key"
expect 2 "enroll.ca.key: cannot read '$D/ca/device-ca.key'" "$D/easgate.yaml"
expect 2 "(enroll.listen is set: the enrollment endpoint would not start" "$D/easgate.yaml"
mv "$D/ca/saved.key" "$D/ca/device-ca.key"
eg_pass "a missing CRL, or a missing device CA with enroll.listen set, are errors"

f=$(variant nocrl "/crl: ca\/device-ca.crl/{x;s/^/x/;/^x\$/{x;d};x}")
expect 0 "warning: instance 'main': client_auth.ca without client_auth.crl" "$f"
chmod 644 "$D/tls/server.key"
expect 0 "warning: the key $D/tls/server.key has mode 0644: others can read it" "$D/easgate.yaml"
chmod 640 "$D/tls/server.key"
chmod 640 "$D/registry.db" "$D/ca/device-ca.key"
expect 0 "warning: the registry $D/registry.db has mode 0640: only its owner should read it" "$D/easgate.yaml"
expect 0 "warning: the device CA key $D/ca/device-ca.key has mode 0640" "$D/easgate.yaml"
chmod 600 "$D/registry.db" "$D/ca/device-ca.key"
"$EG" check -c "$D/easgate.yaml" >/dev/null 2>"$TMP/err" || eg_fail "clean again: $(cat "$TMP/err")"
grep -q "configuration OK" "$TMP/err" || eg_fail "no OK line"
grep -q "warning: the" "$TMP/err" && eg_fail "warnings left: $(cat "$TMP/err")"
eg_pass "a client CA without CRL, loose key and registry modes are warnings (exit 0)"
