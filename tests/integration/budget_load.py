"""Load for test_proxy_budget.sh: requests as fast as they go, from one
thread per proxy port, for SECS seconds; prints one JSON line with what
came back. Usage: budget_load.py SECS MODE PORT [PORT...]
MODE: device (one DeviceId, one user), user (a DeviceId per request, one
user), client (a DeviceId and a user per request)."""
import base64
import http.client
import json
import sys
import threading
import time

secs, mode, ports = float(sys.argv[1]), sys.argv[2], [int(p) for p in sys.argv[3:]]
lock = threading.Lock()
out = {"ok": 0, "throttled": 0, "other": 0, "retry_after": set(), "throttle": set()}


def run(port, tid, t_end):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while time.time() < t_end:
        n += 1
        dev = "BUDGETDEV" if mode == "device" else "D%dX%d" % (tid, n)
        user = "bu" + mode if mode != "client" else "u%dx%d" % (tid, n)
        auth = base64.b64encode((user + ":pw").encode()).decode()
        conn.request("POST", "/Microsoft-Server-ActiveSync?Cmd=Sync&User=%s&DeviceId=%s"
                     "&DeviceType=iPhone" % (user, dev), body=b"",
                     headers={"MS-ASProtocolVersion": "14.1", "User-Agent": "Apple-iPhone/1",
                              "Authorization": "Basic " + auth})
        r = conn.getresponse()
        r.read()
        with lock:
            if r.status == 200:
                out["ok"] += 1
            elif r.status == 503:
                out["throttled"] += 1
                out["retry_after"].add(r.getheader("Retry-After"))
                out["throttle"].add(r.getheader("X-MS-ASThrottle"))
            else:
                out["other"] += 1


t0 = time.time()
t_end = t0 + secs
ts = [threading.Thread(target=run, args=(p, i, t_end)) for i, p in enumerate(ports)]
for t in ts:
    t.start()
for t in ts:
    t.join()
out["elapsed"] = time.time() - t0
out["retry_after"] = sorted(x or "" for x in out["retry_after"])
out["throttle"] = sorted(x or "" for x in out["throttle"])
print(json.dumps(out))
