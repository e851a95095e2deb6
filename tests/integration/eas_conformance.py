#!/usr/bin/env python3
"""A phone's day on one TLS connection, written out byte by byte.

Replays what an iOS device sends to an ActiveSync server -- OPTIONS,
Provision twice, FolderSync, Sync with and without a body, an empty Ping, a
Ping with a body, SendMail (small, and larger than the proxy reads first),
ItemOperations, pipelined requests, Expect: 100-continue, chunked bodies, a
base64 query -- over a single socket to easgate in front of exsim, and checks
every answer: HTTP 200, the command exsim saw (X-Exsim-Cmd) and the body
bytes it got (X-Exsim-Bytes). The socket is never reopened: if easgate
closes it, the next request fails and so does this script. At the end it
prints "requests=N connections=1" and which exsim connections served them.

Usage: eas_conformance.py PORT CAFILE WBXML_DIR
WBXML_DIR holds the bodies the shell made with `easgate wbxml encode`:
provision.wbxml provision2.wbxml foldersync.wbxml sync.wbxml ping.wbxml
itemops.wbxml.
"""
import base64
import socket
import ssl
import struct
import sys

port, cafile, wdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
EAS = "/Microsoft-Server-ActiveSync"
QUERY = "User=alice&DeviceId=CONFORM01&DeviceType=iPhone"
UA = "Apple-iPhone9C1/1402.100"


def body(name):
    with open(f"{wdir}/{name}", "rb") as f:
        return f.read()


ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
sock = ctx.wrap_socket(raw, server_hostname="localhost")
rbuf = b""


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def recv_more():
    global rbuf
    d = sock.recv(65536)
    if not d:
        fail("easgate closed the connection")
    rbuf += d


def read_line():
    global rbuf
    while b"\r\n" not in rbuf:
        recv_more()
    line, _, rbuf = rbuf.partition(b"\r\n")
    return line


def read_n(n):
    global rbuf
    while len(rbuf) < n:
        recv_more()
    d, rbuf = rbuf[:n], rbuf[n:]
    return d


def read_response():
    """(status, headers as a dict of lower-case names, body), 1xx skipped."""
    while True:
        status_line = read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            fail(f"bad status line {status_line!r}")
        status = int(parts[1])
        hdrs = {}
        while True:
            line = read_line().decode("latin-1")
            if not line:
                break
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            continue
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(read_line().split(b";")[0], 16)
                if size == 0:
                    while read_line():
                        pass
                    break
                data += read_n(size)
                read_n(2)
        else:
            data = read_n(int(hdrs.get("content-length", "0")))
        if hdrs.get("connection", "").lower() == "close":
            fail(f"easgate says Connection: close after HTTP {status}")
        return status, hdrs, data


def request(method, query, data=None, headers=(), chunked=False, length=True, version="1.1"):
    target = EAS + (f"?{query}" if query else "")
    head = [f"{method} {target} HTTP/{version}", "Host: localhost", f"User-Agent: {UA}",
            "MS-ASProtocolVersion: 14.1"]
    if version == "1.0":
        head.append("Connection: keep-alive")
    if data is not None and not any(h.lower().startswith("content-type:") for h in headers):
        head.append("Content-Type: application/vnd.ms-sync.wbxml")
    head += list(headers)
    if chunked:
        head.append("Transfer-Encoding: chunked")
    elif length and (data is not None or method == "POST"):
        head.append(f"Content-Length: {len(data or b'')}")
    out = ("\r\n".join(head) + "\r\n\r\n").encode()
    if chunked:
        d = data or b""
        for i in range(0, len(d), 1000):
            piece = d[i:i + 1000]
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        out += b"0\r\n\r\n"
    elif data:
        out += data
    return out


served = []
n_req = 0


def check(what, resp, cmd, sent_bytes):
    global n_req
    status, hdrs, _ = resp
    if status != 200:
        fail(f"{what}: HTTP {status} {hdrs}")
    if hdrs.get("x-exsim-cmd") != cmd:
        fail(f"{what}: exsim saw command {hdrs.get('x-exsim-cmd')!r}, want {cmd!r}")
    if sent_bytes is not None and hdrs.get("x-exsim-bytes") != str(sent_bytes):
        fail(f"{what}: exsim got {hdrs.get('x-exsim-bytes')} body bytes, sent {sent_bytes}")
    served.append(hdrs.get("x-exsim-conn", "?"))
    n_req += 1
    print(f"ok {what}")


def one(what, cmd, sent_bytes, *args, **kw):
    sock.sendall(request(*args, **kw))
    check(what, read_response(), cmd, sent_bytes)


def q(cmd):
    return f"Cmd={cmd}&{QUERY}"


def b64_query(cmd_code):
    # MS-ASHTTP 2.2.1.1.1.1: version 141, command, locale, DeviceId, no
    # policy key, DeviceType
    dev, typ = b"CONFORM01", b"iPhone"
    raw = struct.pack("<BBH", 141, cmd_code, 0x0409) + bytes([len(dev)]) + dev + b"\x00" + \
        bytes([len(typ)]) + typ
    return base64.b64encode(raw).decode()


# OPTIONS: no body at all, then the versions the server speaks.
sock.sendall(request("OPTIONS", None, length=False))
st, h, _ = read_response()
if st != 200 or "ms-asprotocolversions" not in h:
    fail(f"OPTIONS: HTTP {st}, headers {h}")
n_req += 1
print("ok OPTIONS")

prov, prov2 = body("provision.wbxml"), body("provision2.wbxml")
one("Provision (download)", "Provision", len(prov), "POST", q("Provision"), prov)
one("Provision (acknowledge)", "Provision", len(prov2), "POST", q("Provision"), prov2,
    headers=["X-MS-PolicyKey: 1234567890"])
fs = body("foldersync.wbxml")
one("FolderSync", "FolderSync", len(fs), "POST", q("FolderSync"), fs)
sync = body("sync.wbxml")
one("Sync", "Sync", len(sync), "POST", q("Sync"), sync)
one("Sync without body (Content-Length: 0)", "Sync", 0, "POST", q("Sync"), b"")
one("Ping without body (held 300 ms)", "Ping", 0, "POST", q("Ping"), b"",
    headers=["X-Exsim-Hold-Ms: 300"])
one("Ping without a length header", "Ping", 0, "POST", q("Ping"), None, length=False,
    headers=["X-Exsim-Hold-Ms: 0"])
ping = body("ping.wbxml")
one("Ping with body (held 300 ms)", "Ping", len(ping), "POST", q("Ping"), ping,
    headers=["X-Exsim-Hold-Ms: 300"])
mime = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\n" +
        b"short note\r\n")
one("SendMail (small)", "SendMail", len(mime), "POST", q("SendMail") + "&SaveInSent=T", mime,
    headers=["Content-Type: message/rfc822"])
big = mime + b"x" * 200000 + b"\r\n"
one("SendMail (200 KB, streamed)", "SendMail", len(big), "POST", q("SendMail"), big,
    headers=["Content-Type: message/rfc822"])
io = body("itemops.wbxml")
one("ItemOperations", "ItemOperations", len(io), "POST", q("ItemOperations"), io)

# Three requests in one write: answers in order, the connection stays.
sock.sendall(request("POST", q("FolderSync"), fs) +
             request("POST", q("Ping"), b"", headers=["X-Exsim-Hold-Ms: 0"]) +
             request("POST", q("Sync"), sync))
check("pipelined FolderSync", read_response(), "FolderSync", len(fs))
check("pipelined empty Ping", read_response(), "Ping", 0)
check("pipelined Sync", read_response(), "Sync", len(sync))

# Expect: 100-continue: the head, the interim answer, then the body.
sock.sendall(request("POST", q("Sync"), sync, headers=["Expect: 100-continue"])[:-len(sync)])
line = read_line()
if not line.startswith(b"HTTP/1.1 100"):
    fail(f"Expect: 100-continue: got {line!r} before the body was sent")
read_line()
sock.sendall(sync)
check("Expect: 100-continue Sync", read_response(), "Sync", len(sync))

one("chunked Sync", "Sync", len(sync), "POST", q("Sync"), sync, chunked=True)
one("chunked SendMail (200 KB)", "SendMail", len(big), "POST", q("SendMail"), big, chunked=True,
    headers=["Content-Type: message/rfc822"])
one("chunked empty Ping", "Ping", 0, "POST", q("Ping"), b"", chunked=True,
    headers=["X-Exsim-Hold-Ms: 0"])
one("base64 query FolderSync", "FolderSync", len(fs), "POST", b64_query(9), fs)
one("HTTP/1.0 keep-alive Sync", "Sync", len(sync), "POST", q("Sync"), sync, version="1.0")
one("FolderSync at the end", "FolderSync", len(fs), "POST", q("FolderSync"), fs)

sock.close()
print(f"requests={n_req} connections=1 upstream_connections={len(set(served))}")
