#!/usr/bin/env python3
"""A plain-HTTP upstream for tests that must see exactly what the proxy sent.

Every request it reads whole (head, then body by Content-Length or chunked,
with any trailer; one cut short by the end of the connection is not) is
appended to the capture file as one JSON line:
{"line": request line, "headers": [[name, value], ...], "body_len": n,
 "trailer": [[name, value], ...], "conn": connection serial}. It answers
200 with a small text body and keeps the connection alive.

Usage: capture_upstream.py PORT CAPTURE_FILE
"""
import json
import socket
import sys
import threading

port, path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
serial = [0]


def read_line(f):
    line = f.readline(65537)
    if not line.endswith(b"\r\n"):
        raise EOFError
    return line[:-2].decode("latin-1")


def read_exact(f, n):
    """n bytes, or EOFError: a request cut short is not a request."""
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def read_fields(f):
    out = []
    while True:
        line = read_line(f)
        if line == "":
            return out
        name, _, value = line.partition(":")
        out.append([name, value.strip()])


def serve(sock, conn_id):
    f = sock.makefile("rb")
    try:
        while True:
            line = read_line(f)
            headers = read_fields(f)
            low = {n.lower(): v for n, v in headers}
            body_len, trailer = 0, []
            if "chunked" in low.get("transfer-encoding", "").lower():
                while True:
                    size = int(read_line(f).split(";")[0], 16)
                    if size == 0:
                        trailer = read_fields(f)
                        break
                    body_len += len(read_exact(f, size))
                    read_line(f)
            elif "content-length" in low:
                body_len = len(read_exact(f, int(low["content-length"])))
            rec = {"line": line, "headers": headers, "body_len": body_len,
                   "trailer": trailer, "conn": conn_id}
            with lock, open(path, "a") as out:
                out.write(json.dumps(rec) + "\n")
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 3\r\n\r\nok\n")
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
while True:
    s, _ = srv.accept()
    serial[0] += 1
    threading.Thread(target=serve, args=(s, serial[0]), daemon=True).start()
