#!/usr/bin/env bash
# A real ActiveSync server behind easgate (issue 14, point 4): Debian's SOGo
# 5.8 with its PostgreSQL, Dovecot, memcached and an SMTP sink, all started
# by tests/integration/sogo.sh on loopback. The project's own client
# (build/easclient) runs one whole phone session -- OPTIONS, Provision,
# FolderSync, Ping without and with a body (held), Sync of INBOX in rounds,
# ItemOperations Fetch, MoveItems, SendMail, Sync of Sent -- twice:
#   1. straight to SOGo (alice): the transcript must be the one below, and
#      the SMTP sink must hold the mail SendMail sent;
#   2. through easgate (bob), TLS from the phone, passthrough provisioning:
#      the transcript must be the same as the direct one, the mail sent too,
#      and every request is in the access log with SOGo's status.
# Then what easgate should do better with SOGo, each tied to its point of
# issue 14 or found here (see SOGO_PENDING).
#
# Skips (77) only when the SOGo environment is not installed
# (scripts/bootstrap installs it) or the build lacks easgate/easclient.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sogo.sh"
if ! why=$(sogo_missing); then
  echo "SKIP: $why"
  exit 77
fi
for b in easgate easclient; do
  [ -x "$BUILD/$b" ] || { echo "SKIP: no $b in $BUILD"; exit 77; }
done

# What easgate does not yet do right with SOGo. Each token names assertions
# below that are expected to fail until its fix lands: they print XFAIL and
# the test goes on; one that holds all the same fails the test (XPASS), so
# that this list gets updated. Remove a token when its fix lands:
#   cl0        found here, with 14.1 ("bodiless requests"): easgate forwards
#              a POST that came with Content-Length: 0 without any length
#              header; SOGo (SOPE) answers such a POST with HTTP 500, so an
#              empty Ping through easgate gets 500 instead of SOGo's answer.
SOGO_PENDING=${EG_SOGO_PENDING-}
pending() { [[ " $SOGO_PENDING " == *" $1 "* ]]; }
expect() { # TOKEN WHAT CMD...: an assertion that waits for the fix TOKEN names
  local token=$1 what=$2
  shift 2
  if "$@"; then
    pending "$token" &&
      eg_fail "XPASS: '$what' holds now: remove '$token' from SOGO_PENDING in $0"
    eg_pass "$what"
  else
    pending "$token" || eg_fail "$what [$token]"
    echo "XFAIL [$token pending]: $what"
  fi
}

sogo_up

# The session: what a phone does on its first day.
cat >"$TMP/session.txt" <<'EOF'
options
provision
foldersync
ping                         # no body, and the server knows no folders yet: Status 3
sync INBOX                   # SyncKey 0
sync INBOX 2                 # the mails, two at a time
sync INBOX 2
fetch INBOX Test mail 2
sync INBOX
ping 5 INBOX                 # held for its heartbeat: nothing changes
move INBOX Trash Test mail 3
ping                         # no body: the folders of the last Ping; INBOX changed
sendmail carol@example.test Hello from the session
sync INBOX
sync Sent
sync Sent
EOF

# What SOGo 5.8 answers (see docs/sogo.md for why each line reads so).
cat >"$TMP/expected.txt" <<'EOF'
1 options: HTTP 200 empty; MS-Server-ActiveSync=14.1; MS-ASProtocolVersions=2.5,12.0,12.1,14.0,14.1; MS-ASProtocolCommands=22 commands
2 provision download: HTTP 200 wbxml Status=1 Policy.Status=2 PolicyKey=absent EASProvisionDoc=absent
2 provision acknowledge: not sent (no PolicyKey to acknowledge)
3 foldersync: HTTP 200 wbxml Status=1 Count=9
    folder type=12 Junk
    folder type=12 Templates
    folder type=2 INBOX
    folder type=3 Drafts
    folder type=4 Trash
    folder type=5 Sent
    folder type=7 Personal Calendar
    folder type=8 Personal Calendar
    folder type=9 Personal Address Book
4 ping (no body): HTTP 200 wbxml Status=3
5 sync INBOX (SyncKey 0): HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no
6 sync INBOX: HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=yes add=2 change=0 delete=0
    add "Test mail 1" read=0 body=180/140
    add "Test mail 2" read=0 body=360/280
7 sync INBOX: HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no add=1 change=0 delete=0
    add "Test mail 3" read=0 body=540/420
8 fetch INBOX "Test mail 2": HTTP 200 wbxml Status=1 Fetch.Status=1 Subject=present body=360/280
9 sync INBOX: HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no
10 ping heartbeat=5 INBOX: HTTP 200 wbxml Status=1
11 move INBOX -> Trash "Test mail 3": HTTP 200 wbxml Status=3 DstMsgId=present
12 ping (no body): HTTP 200 wbxml Status=2 Folders=INBOX
13 sendmail "Hello from the session": HTTP 200 empty
14 sync INBOX: HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no add=0 change=0 delete=1
    delete "Test mail 3"
15 sync Sent (SyncKey 0): HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no
16 sync Sent: HTTP 200 wbxml Class=Email Collection.Status=1 MoreAvailable=no add=1 change=0 delete=0
    add "Hello from the session" read=1 body=43/39
EOF

sent_from() { # USER: a mail with the session's subject from USER reached the SMTP sink
  grep -l -s "^Subject: Hello from the session" "$SOGO_SENT"/new/* | xargs -r grep -l "^From: .*<$1@example.test>" | eg_has .
}

# 1. Straight to SOGo.
t0=$(date +%s%N)
"$BUILD/easclient" --url "$SOGO_URL" --user alice --password alicepw --device SOGOSESS0001 \
  --report "$TMP/direct.report" session "$TMP/session.txt" >"$TMP/direct.txt" ||
  eg_fail "the direct session did not finish: $(cat "$TMP/direct.txt")"
direct_ms=$((($(date +%s%N) - t0) / 1000000))
diff -u "$TMP/expected.txt" "$TMP/direct.txt" >"$TMP/direct.diff" ||
  eg_fail "SOGo's answers are not the expected ones:
$(cat "$TMP/direct.diff")"
sent_from alice || eg_fail "SendMail straight to SOGo: no mail from alice in the SMTP sink"
eg_pass "session straight to SOGo: 16 steps as expected in $direct_ms ms, the mail reached SMTP"

# 2. Through easgate: TLS from the phone, plain HTTP to SOGo (sogod has no TLS).
CERTS=$(eg_certs)
PX=$(eg_port)
ADM=$(eg_port)
# SOGo lives under /SOGo: upstream.url carries the prefix (issue 14.3).
upstream="$SOGO_URL"
cat >"$TMP/policy.yaml" <<'YAML'
unknown_devices: allow
provisioning: { mode: passthrough }
YAML
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  instances:
    - name: sogo
      listen: 127.0.0.1:$PX
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: "$upstream" }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML
eg_stack proxy "$TMP/easgate.yaml"

t0=$(date +%s%N)
"$BUILD/easclient" --url "https://localhost:$PX" --cafile "$CERTS/ca.crt" --user bob --password bobpw \
  --device SOGOSESS0002 --report "$TMP/proxy.report" session "$TMP/session.txt" >"$TMP/proxy.txt" ||
  eg_fail "the session through easgate did not finish: $(cat "$TMP/proxy.txt")"
proxy_ms=$((($(date +%s%N) - t0) / 1000000))
# Lines that a pending fix changes are asserted on their own, and left out
# of the comparison of the rest.
compared() { cat; }
if pending cl0; then
  empty_pings() { grep 'ping (no body)' "$1"; }
  same_empty_pings() { diff <(empty_pings "$TMP/direct.txt") <(empty_pings "$TMP/proxy.txt") >/dev/null; }
  expect cl0 "empty Pings through easgate get SOGo's answers ($(empty_pings "$TMP/proxy.txt" | sed 's/^[^:]*: //' | paste -sd,))" \
    same_empty_pings
  compared() { grep -v 'ping (no body)'; }
fi
diff -u <(compared <"$TMP/direct.txt") <(compared <"$TMP/proxy.txt") >"$TMP/proxy.diff" ||
  eg_fail "through easgate the session reads differently than straight to SOGo:
$(cat "$TMP/proxy.diff")"
sent_from bob || eg_fail "SendMail through easgate: no mail from bob in the SMTP sink"
eg_pass "session through easgate (TLS): the same transcript in $proxy_ms ms, the mail reached SMTP"

# The proxy logged every answer the phone got, with the same status, in order
# (a request the proxy lost has no line; easclient sent it again).
grep -o '"status":[0-9]*' "$TMP/access.log" | cut -d: -f2 >"$TMP/logged"
sed -n 's/^[^:]*: HTTP \([0-9]*\) in .*/\1/p' "$TMP/proxy.report" >"$TMP/answered"
diff "$TMP/answered" "$TMP/logged" >/dev/null ||
  eg_fail "access log statuses $(paste -sd' ' "$TMP/logged") != answers seen by the phone $(paste -sd' ' "$TMP/answered")"
eg_pass "access log: $(wc -l <"$TMP/logged") answers, as the phone saw them"

# 3. Keep-alive with a server that ends every connection after one answer,
# and the prefix as easgate check shows it.
stats=$(tail -1 "$TMP/proxy.report")
# SOGo closes its connection after every answer without Connection: close:
# easgate must never lose a request to such a pooled connection (the body is
# read first and the request goes again on a new one, or it streams on a new
# one from the start), so the phone never sees a 503 and keeps its
# connection.
retried=$(sed -n 's/.*retried_503=\([0-9]*\).*/\1/p' "$TMP/proxy.report")
[ "$retried" = 0 ] || eg_fail "easgate answered 503 $retried time(s) in the session ($stats)"
[[ "$stats" == "connections=1 closed_idle=0 lost=0 "* ]] ||
  eg_fail "the session through easgate took more than one TLS connection ($stats)"
eg_pass "one TLS connection carries the whole session through easgate, no 503 ($stats)"

"$BUILD/easgate" check -c "$TMP/easgate.yaml" >"$TMP/prefix-check.log" 2>&1 &&
  grep -q "activesync: /SOGo/Microsoft-Server-ActiveSync" "$TMP/prefix-check.log" ||
  eg_fail "easgate check does not show SOGo's ActiveSync path: $(cat "$TMP/prefix-check.log")"
eg_pass "upstream.url carries SOGo's path (/SOGo), easgate check shows the mapping"
