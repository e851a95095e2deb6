#!/usr/bin/env bash
# Malformed WBXML never reaches Exchange. A body the proxy reads first
# (FolderSync, Provision, Settings, Ping) is decoded before the decision; a
# streamed one (Sync, ItemOperations, ...) is decoded as it passes, and the
# upstream request is cut before its end on the first error. The phone gets
# the protocol's answer (Provision and Settings: their Status 2, protocol
# error; the others Status 102 InvalidWBXML from 14.0, HTTP 400 before)
# and the access log says wbxml-invalid. Valid bodies, and MIME bodies of
# SendMail before 14.0, pass untouched. capture_upstream.py records only
# requests that arrived whole.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

UP=$(eg_port); PL=$(eg_port); ADM=$(eg_port)
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$ADM
  instances:
    - name: plain
      listen: 127.0.0.1:$PL
      upstream: { url: http://127.0.0.1:$UP }
log: { access: "$TMP/access.log", level: info }
YAML
eg_start upstream python3 "$SRC/tests/integration/capture_upstream.py" "$UP" "$TMP/capture.jsonl"
eg_wait_port "$UP"
eg_stack proxy "$TMP/easgate.yaml"

python3 - "$PL" "$TMP/capture.jsonl" "$TMP/access.log" <<'PY' || eg_fail "WBXML validation"
import json, os, socket, sys, time
port, cap, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def captured():
    if not os.path.exists(cap):
        return []
    return [json.loads(l) for l in open(cap)]

def last_log(n_before):
    for _ in range(50):
        lines = open(log).read().splitlines() if os.path.exists(log) else []
        if len(lines) > n_before:
            return json.loads(lines[-1])
        time.sleep(0.1)
    raise AssertionError("no access-log line")

def nlog():
    return len(open(log).read().splitlines()) if os.path.exists(log) else 0

def send(cmd, body, version="14.1", chunked=False, ctype="application/vnd.ms-sync.wbxml",
         dev="WBX1", pieces=1):
    """One request on a new connection: (status, body, access-log line, captured?)"""
    n0, c0 = nlog(), len(captured())
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = ("POST /Microsoft-Server-ActiveSync?Cmd=%s&User=alice&DeviceId=%s&DeviceType=iPhone "
            "HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: %s\r\nContent-Type: %s\r\n"
            % (cmd, dev, version, ctype))
    if chunked:
        s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        step = max(1, len(body) // pieces)
        try:
            for i in range(0, len(body), step):
                p = body[i:i + step]
                s.sendall(b"%x\r\n" % len(p) + p + b"\r\n")
                time.sleep(0.02)
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the proxy answered and closed first
    else:
        s.sendall((head + "Content-Length: %d\r\n\r\n" % len(body)).encode())
        step = max(1, len(body) // pieces)
        for i in range(0, len(body), step):
            try:
                s.sendall(body[i:i + step])
            except OSError:
                break
            time.sleep(0.02)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        hd, _, rest = data.partition(b"\r\n\r\n")
        clen = 0
        for l in hd.split(b"\r\n")[1:]:
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v)
        while len(rest) < clen:
            d = s.recv(65536)
            if not d:
                break
            rest += d
    except OSError:
        pass
    s.close()
    status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else 0
    entry = last_log(n0)
    time.sleep(0.2)
    return status, rest, entry, len(captured()) > c0

FOLDERSYNC = b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01"
SYNC = (b"\x03\x01\x6a\x00\x45\x5c\x4f\x4b\x03\x30\x00\x01\x52\x03\x31\x00\x01\x01\x01\x01")
STATUS_102 = b"\x03\x01\x6a\x00"  # the answer starts like any WBXML; Status 102 below

def invalid(what, status, body, entry, seen, version="14.1", st=b"102"):
    assert not seen, "%s reached the upstream" % what
    assert entry["reason"] == "wbxml-invalid", (what, entry)
    if st != b"102":  # Provision and Settings: their own Status 2 at every version
        assert status == 200 and b"\x03" + st + b"\x00" in body, (what, status, body)
    elif version >= "14":
        assert status == 200 and body.startswith(STATUS_102) and b"\x03102\x00" in body, (what, status, body)
    else:
        assert status == 400, (what, status)

# buffered bodies: FolderSync and Provision, garbage and truncated
for what, cmd, body in (("garbage FolderSync", "FolderSync", b"\x00\x01\x02garbage"),
                        ("truncated FolderSync", "FolderSync", FOLDERSYNC[:-3]),
                        ("FolderSync with a string table", "FolderSync",
                         b"\x03\x01\x6a\x04abc\x00" + FOLDERSYNC[4:])):
    invalid(what, *send(cmd, body))
invalid("unknown tag in Provision", *send("Provision", b"\x03\x01\x6a\x00\x00\x0e\x3f\x01"), st=b"2")
invalid("garbage Settings at 12.1", *send("Settings", b"junk", version="12.1"), version="12.1", st=b"2")
invalid("garbage FolderSync at 12.1", *send("FolderSync", b"junk", version="12.1"), version="12.1")
st, _, e, seen = send("FolderSync", FOLDERSYNC)
assert st == 200 and seen and e["reason"] != "wbxml-invalid", (st, e)
print("bodies read first: invalid ones answered 102/400, valid ones forwarded")

# streamed bodies: Content-Length and chunked, in pieces
for what, body, chunked in (("garbage Sync", b"\x03\x01\x6a\x00\x45\xff\xff" + b"x" * 3000, False),
                            ("truncated Sync", SYNC[:-2], False),
                            ("garbage chunked Sync", b"\x03\x01\x6a\x00\x45" + b"\xee" * 3000, True),
                            ("truncated chunked Sync", SYNC[:-2], True)):
    invalid(what, *send("Sync", body, chunked=chunked, pieces=4))
for chunked in (False, True):
    st, _, e, seen = send("Sync", SYNC, chunked=chunked, pieces=3)
    assert st == 200 and seen and e["reason"] != "wbxml-invalid", ("valid Sync", chunked, st, e)
print("streamed bodies: the upstream request is cut on the first error; valid ones pass")

# SendMail before 14.0 is MIME, not WBXML
mime = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
st, _, e, seen = send("SendMail", mime, version="12.1", ctype="message/rfc822")
assert st == 200 and seen, ("MIME SendMail", st, e)
print("SendMail's MIME body passes")
PY
eg_stop_clean proxy
eg_pass "malformed WBXML never reaches the upstream"
