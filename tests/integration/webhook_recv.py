#!/usr/bin/python3
"""A webhook receiver for the notification tests, verifying each POST the
way docs/notifications.md tells receivers to: HMAC-SHA256 under the shared
secret over "<X-Easgate-Timestamp>.<body>", compared in constant time with
X-Easgate-Signature, and the timestamp within 5 minutes. Good requests are
appended to OUT as JSON lines (headers and body); bad ones are answered 401
and counted in OUT.bad. The first FAIL requests are answered 503 (after
verifying), to make the sender retry. Runs until SIGTERM.

usage: webhook_recv.py PORT SECRET OUT [FAIL]
"""
import hashlib
import hmac
import http.server
import json
import sys
import time

port, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
fail = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]


class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-Easgate-Timestamp", "")
        sig = self.headers.get("X-Easgate-Signature", "")
        want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        if not (fresh and hmac.compare_digest(sig, want)):
            with open(out + ".bad", "a") as f:
                f.write("%s %s\n" % (ts, sig))
            self.send_response(401)
            self.end_headers()
            return
        if fail[0] > 0:
            fail[0] -= 1
            self.send_response(503)
            self.end_headers()
            return
        rec = {"path": self.path, "event": self.headers.get("X-Easgate-Event"),
               "delivery": self.headers.get("X-Easgate-Delivery"),
               "type": self.headers.get("Content-Type"), "body": json.loads(body)}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
