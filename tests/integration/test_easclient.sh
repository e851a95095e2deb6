#!/usr/bin/env bash
# easclient, the tests' phone, on its own (test_sogo_session.sh drives it
# against a real server; this runs everywhere, in seconds):
#   - on the wire (capture_upstream.py): a URL path is the prefix of
#     /Microsoft-Server-ActiveSync, --password sends Basic auth; a session
#     sends every request on one kept-alive connection, OPTIONS without a
#     query, an empty Ping with Content-Length: 0;
#   - TLS: a session against exsim verified with --cafile reads as expected
#     (both Provision legs, the policy key sent afterwards, folders sorted,
#     a held Ping) on one connection; another CA, or a name the
#     certificate does not carry, is refused;
#   - a script line it cannot read is said with its line number (exit 2).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for b in exsim easclient; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

CERTS=$(eg_certs)
CAP=$(eg_port)
eg_start capture python3 "$SRC/tests/integration/capture_upstream.py" "$CAP" "$TMP/capture.jsonl"
eg_exsim --tls --ping-cap 5
eg_wait_port "$CAP"
EC() { "$BUILD/easclient" --user alice --device DEVEC1 "$@"; }

# 1. On the wire.
echo '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' >"$TMP/fs.xml"
EC --url "http://127.0.0.1:$CAP/SOGo/" --password pw FolderSync "$TMP/fs.xml" >/dev/null ||
  eg_fail "one-shot FolderSync to the capture failed"
python3 - "$TMP/capture.jsonl" <<'PY' || eg_fail "one-shot request on the wire: see above"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
h = {n.lower(): v for n, v in r["headers"]}
want = "POST /SOGo/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=DEVEC1&DeviceType=iPhone HTTP/1.1"
assert r["line"] == want, r["line"]
assert h.get("authorization") == "Basic YWxpY2U6cHc=", h  # alice:pw
assert h.get("connection") == "close", h
PY
eg_pass "one-shot: URL path as prefix, Basic auth, Connection: close"

: >"$TMP/capture.jsonl"
printf 'options\nprovision\nping\nsendmail bob@example.test Hi\n' >"$TMP/wire.txt"
EC --url "http://127.0.0.1:$CAP/SOGo" --password pw --report "$TMP/wire.report" session "$TMP/wire.txt" \
  >"$TMP/wire.out" || eg_fail "session to the capture failed: $(cat "$TMP/wire.out")"
python3 - "$TMP/capture.jsonl" <<'PY' || eg_fail "session on the wire: see above"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
lines = [r["line"].split("&User")[0] for r in rs]
assert lines == ["OPTIONS /SOGo/Microsoft-Server-ActiveSync HTTP/1.1",
                 "POST /SOGo/Microsoft-Server-ActiveSync?Cmd=Provision",
                 "POST /SOGo/Microsoft-Server-ActiveSync?Cmd=Ping",
                 "POST /SOGo/Microsoft-Server-ActiveSync?Cmd=SendMail"], lines
assert len({r["conn"] for r in rs}) == 1, [r["conn"] for r in rs]  # one connection
for r in rs:
    h = {n.lower(): v for n, v in r["headers"]}
    assert h.get("authorization") == "Basic YWxpY2U6cHc=", h
    assert h.get("ms-asprotocolversion") == "14.1", h
    assert "connection" not in h, h
ping = {n.lower(): v for n, v in rs[2]["headers"]}
assert ping.get("content-length") == "0" and rs[2]["body_len"] == 0, rs[2]
PY
grep -qx 'connections=1 closed_idle=0 lost=0 retried_503=0' "$TMP/wire.report" ||
  eg_fail "session to the capture: want one connection: $(tail -1 "$TMP/wire.report")"
grep -q '^2 provision acknowledge: not sent' "$TMP/wire.out" || eg_fail "a text answer to Provision gave a key?"
eg_pass "session: 4 requests on one kept-alive connection, OPTIONS without query, empty Ping with Content-Length: 0"

# 2. TLS against exsim.
cat >"$TMP/session.txt" <<'EOF'
options
provision
foldersync
sync Inbox
ping 1 Inbox Drafts   # held for its heartbeat
sendmail carol@example.test Hello
EOF
cat >"$TMP/expected.txt" <<'EOF'
1 options: HTTP 200 empty; MS-Server-ActiveSync=15.1; MS-ASProtocolVersions=2.5,12.0,12.1,14.0,14.1,16.0,16.1; MS-ASProtocolCommands=19 commands
2 provision download: HTTP 200 wbxml Status=1 Policy.Status=1 PolicyKey=present EASProvisionDoc=present
2 provision acknowledge: HTTP 200 wbxml Status=1 Policy.Status=1 PolicyKey=present EASProvisionDoc=absent
3 foldersync: HTTP 200 wbxml Status=1 Count=12
    folder type=1 Archive
    folder type=10 Notes
    folder type=11 Journal
    folder type=12 Junk Email
    folder type=2 Inbox
    folder type=3 Drafts
    folder type=4 Deleted Items
    folder type=5 Sent Items
    folder type=6 Outbox
    folder type=7 Tasks
    folder type=8 Calendar
    folder type=9 Contacts
4 sync Inbox (SyncKey 0): HTTP 200 wbxml Collection.Status=1 MoreAvailable=no add=2 change=0 delete=0
    add "" read=- body=1/1
    add "" read=- body=449/449
5 ping heartbeat=1 Inbox Drafts: HTTP 200 wbxml Status=1
6 sendmail "Hello": HTTP 200 empty
EOF
EC --url "https://localhost:$exsim_port" --cafile "$CERTS/ca.crt" --password pw --report "$TMP/tls.report" \
  session "$TMP/session.txt" >"$TMP/tls.out" || eg_fail "TLS session failed: $(cat "$TMP/tls.out")"
diff -u "$TMP/expected.txt" "$TMP/tls.out" || eg_fail "TLS session: transcript differs (above)"
grep -qx 'connections=1 closed_idle=0 lost=0 retried_503=0' "$TMP/tls.report" ||
  eg_fail "TLS session: want one connection: $(tail -1 "$TMP/tls.report")"
held=$(sed -n 's/^ping: HTTP 200 in \([0-9]*\) ms.*/\1/p' "$TMP/tls.report")
[ "$held" -ge 900 ] || eg_fail "the Ping with heartbeat 1 was answered after $held ms"
eg_pass "TLS session against exsim: transcript as expected, one connection, Ping held ${held} ms"

out=$(EC --url "https://localhost:$exsim_port" --cafile "$CERTS/device-ca.crt" session "$TMP/session.txt" 2>&1) &&
  eg_fail "a server certificate from another CA was accepted"
grep -q 'certificate verify failed' <<<"$out" || eg_fail "other CA: $out"
out=$(EC --url "https://127.0.0.1:$exsim_port" --sni wrong.example --cafile "$CERTS/ca.crt" \
  session "$TMP/session.txt" 2>&1) && eg_fail "a certificate for another name was accepted"
grep -q 'hostname mismatch' <<<"$out" || eg_fail "wrong name: $out"
eg_pass "TLS: another CA and another name are refused"

# 3. A script line it cannot read.
printf 'options\nfly to the moon\n' >"$TMP/bad.txt"
rc=0
out=$(EC --url "https://localhost:$exsim_port" --cafile "$CERTS/ca.crt" session "$TMP/bad.txt" 2>&1) || rc=$?
[ "$rc" = 2 ] || eg_fail "bad script: want exit 2, got $rc: $out"
grep -q "bad.txt:2: cannot read this command: fly to the moon" <<<"$out" || eg_fail "bad script: $out"
eg_pass "a bad script line is said with its number"
