#!/usr/bin/env bash
# easload, the device load generator, against exsim over TLS:
#  - a short closed-loop run of the realistic mix reports zero errors, and
#    exsim saw both query forms and every command of the mix;
#  - held Pings are held (exsim counts them) and re-issued when answered;
#  - --new-conn with resumption on resumes TLS sessions;
#  - a dead server gives connect errors and a failing exit status.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$BUILD/exsim" ] && [ -x "$BUILD/easload" ] || { echo "no exsim/easload"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }

certs=$(eg_certs)
eg_exsim --tls --ping-cap 30
URL="https://localhost:$exsim_port"
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# 1. closed loop, default mix, short Pings
"$BUILD/easload" --url "$URL" --cafile "$certs/ca.crt" --connections 8 --devices 50 \
  --duration 3 --ping-heartbeat 1 --attach 200000 --json "$TMP/mix.json" > "$TMP/mix.txt" ||
  eg_fail "easload mix run failed: $(cat "$TMP/mix.txt")"
[ "$(json "$TMP/mix.json" 'd["errors"]')" = 0 ] || eg_fail "mix run had errors: $(cat "$TMP/mix.txt")"
ok=$(json "$TMP/mix.json" 'd["ok"]')
[ "$ok" -gt 20 ] || eg_fail "mix run: only $ok answers"
for cmd in Sync FolderSync GetItemEstimate ItemOperations Ping SendMail Settings Provision; do
  [ "$(json "$TMP/mix.json" "d['cmds'].get('$cmd',0) > 0")" = True ] || eg_fail "mix never sent $cmd"
done
curl -s --cacert "$certs/ca.crt" "$URL/exsim/stats" > "$TMP/stats"
[ "$(json "$TMP/stats" 'd["base64"] > 0')" = True ] || eg_fail "no base64 queries reached exsim"
[ "$(json "$TMP/stats" 'd["requests"] - d["base64"] > 0')" = True ] || eg_fail "no plain queries"
[ "$(json "$TMP/stats" 'd["bad"]')" = 0 ] || eg_fail "exsim saw bad requests: $(cat "$TMP/stats")"

# 2. 40 held Pings with a 2 s heartbeat for 3 s: all held at once, answered, re-issued
"$BUILD/easload" --url "$URL" --connections 0 --hold-pings 40 --hold-heartbeat 2 \
  --duration 3.5 --json "$TMP/hold.json" > "$TMP/hold.txt" || eg_fail "hold run failed: $(cat "$TMP/hold.txt")"
[ "$(json "$TMP/hold.json" 'd["held_max"]')" = 40 ] || eg_fail "not all 40 Pings held: $(cat "$TMP/hold.txt")"
[ "$(json "$TMP/hold.json" 'd["hold_answered"] >= 40')" = True ] || eg_fail "held Pings not answered"
curl -s --cacert "$certs/ca.crt" "$URL/exsim/stats" > "$TMP/stats"
[ "$(json "$TMP/stats" 'd["held_max"] >= 40')" = True ] || eg_fail "exsim did not hold 40 Pings"
[ "$(json "$TMP/stats" 'd["held"]')" = 0 ] || eg_fail "Pings still held after easload ended"

# 3. a new connection per request, sessions resumed
"$BUILD/easload" --url "$URL" --connections 2 --mix sync --new-conn --resume on --requests 30 \
  --duration 20 --json "$TMP/new.json" > "$TMP/new.txt" || eg_fail "new-conn run failed"
[ "$(json "$TMP/new.json" 'd["handshakes"] >= 30')" = True ] || eg_fail "--new-conn reused connections"
[ "$(json "$TMP/new.json" 'd["resumed"] > 20')" = True ] || eg_fail "TLS sessions not resumed: $(cat "$TMP/new.txt")"

# 4. the tests can fail: nothing listening -> connect errors, exit status 1
dead=$(eg_port)
if "$BUILD/easload" --url "https://127.0.0.1:$dead" --connections 2 --duration 1 \
  --json "$TMP/dead.json" > "$TMP/dead.txt"; then
  eg_fail "easload against a dead port exited 0"
fi
[ "$(json "$TMP/dead.json" 'd["err"]["connect"] > 0')" = True ] || eg_fail "no connect errors counted"
# bad usage is refused with status 2
set +e
"$BUILD/easload" --url ftp://x --duration 1 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || eg_fail "bad --url gave status $rc"
kill -0 "$exsim_pid" || eg_fail "exsim died"
eg_pass "easload: $ok answers, 0 errors; 40 Pings held; TLS resumption works"
