#!/usr/bin/env python3
"""TEMPORARY, for tests only: remove when issue 14.3 (upstream path prefixes)
lands and easgate's upstream.url can say http://127.0.0.1:PORT/SOGo itself.

SOGo serves ActiveSync under /SOGo/Microsoft-Server-ActiveSync, and easgate
today forwards /Microsoft-Server-ActiveSync as the phone sent it. This shim
sits between the two and rewrites the request line of each connection's
first request (/Microsoft-Server-ActiveSync... -> PREFIX/Microsoft-Server-
ActiveSync...), then copies bytes both ways untouched, and closes each side
when the other does. It adds no keep-alive of its own: SOGo closes every
connection after one answer, and easgate must see exactly that.

Usage: sogo_prefix_shim.py LISTEN_PORT SOGO_PORT PREFIX
"""
import socket
import sys
import threading

listen_port, sogo_port, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
AS_PATH = b"/Microsoft-Server-ActiveSync"
MAX_HEAD = 65536


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def rewrite(head):
    line, sep, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) == 3 and parts[1][: len(AS_PATH)].lower() == AS_PATH.lower():
        parts[1] = prefix.encode() + AS_PATH + parts[1][len(AS_PATH):]
    return b" ".join(parts) + sep + rest


def serve(client):
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
        data = client.recv(65536)
        if not data:
            client.close()
            return
        buf += data
    try:
        up = socket.create_connection(("127.0.0.1", sogo_port))
    except OSError:
        client.close()
        return
    up.sendall(rewrite(buf))
    t = threading.Thread(target=pump, args=(up, client), daemon=True)
    t.start()
    pump(client, up)
    t.join()
    client.close()
    up.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


main()
