#!/usr/bin/env python3
"""bench/report.py RESULTS.jsonl PROFILE.txt PROFILE-DSO.txt: RESULTS.md on stdout.

Called by bench/run.sh (write_report) with the run's settings in the
environment and the generated configurations under $CONF. Every figure is a
median over the rounds of the run; the rounds themselves are listed too.
"""
import json
import os
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
prof = open(sys.argv[2]).read().rstrip() if os.path.exists(sys.argv[2]) else ""
dso = open(sys.argv[3]).read().rstrip() if os.path.exists(sys.argv[3]) else ""
E = os.environ
PROX = [p for p in ("easgate", "nginx", "haproxy") if any(r["proxy"] == p for r in rows)]
PEERS = [p for p in ("nginx", "haproxy") if p in PROX]
NAME = {"easgate": "easgate", "nginx": "nginx", "haproxy": "HAProxy", "easgate-log": "easgate, access log on"}
UPNAME = {"plain": "plain upstream", "tls": "TLS upstream", "exsim": "exsim, TLS"}


def runs(tag, proxy, **kw):
    return [r for r in rows if r["tag"] == tag and r["proxy"] == proxy
            and all(r.get(k) == v for k, v in kw.items())]


def vals(rr, key, f=lambda v: v):
    return [f(r[key]) for r in rr if r.get(key) is not None]


def med(rr, key, f=lambda v: v):
    v = vals(rr, key, f)
    return statistics.median(v) if v else None


def fmt(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.{nd}f}×"


def allv(rr, key, f=lambda v: v, nd=0):
    return ", ".join(fmt(v, nd) for v in vals(rr, key, f)) or "—"


ms = lambda v: v / 1000
out = []
w = out.append
cols = PROX + [f"easgate/{NAME[p]}" for p in PEERS if "easgate" in PROX]


def head(first=""):
    w(f"| {first} | " + " | ".join(NAME.get(c, c) for c in cols) + " |")
    w("|---" * (len(cols) + 1) + "|")


def line(label, per, nd, ratios=True):
    """one table row: per(proxy) -> value; ratios of easgate to each peer"""
    v = {p: per(p) for p in PROX}
    cells = [fmt(v[p], nd) for p in PROX]
    if "easgate" in PROX:
        cells += [ratio(v["easgate"], v[p]) if ratios else "" for p in PEERS]
    w(f"| {label} | " + " | ".join(cells) + " |")
    return v


w("# easgate vs nginx and HAProxy: measured side by side")
w("")
w("Written by `bench/run.sh` (do not edit by hand; re-run it). Every figure is the")
w(f"median of {E['RUNS']} rounds; the individual rounds are listed below each table. The")
w("proxies ran interleaved (easgate, nginx, HAProxy, easgate, nginx, HAProxy, ...) against")
w("the same backends, driven by the same load generator (easload), in one invocation of")
w("the script.")
w("")
if E.get("QUICK") == "1":
    w("**Quick mode (BENCH_QUICK=1): a smoke run of a second per measurement; the figures")
    w("only show that every path works.**")
    w("")
w("**The load generator, the backends and the proxies share one machine** (2 cores of a")
w("virtual machine that other work shared during the run): absolute figures are low and")
w(f"noisy; the ratios are the result. Load average (1, 5, 15 min) at the start: {E.get('LOAD_AT_START', '?')};")
w(f"at the end: {E.get('LOAD_AT_END', '?')}.")
l1 = [r["load1"] for r in rows if "load1" in r]
if l1:
    w(f"One-minute load average at the end of each load run: {min(l1):.1f} to {max(l1):.1f} "
      f"(median {statistics.median(l1):.1f}).")
w("")
w("## Machine and versions")
w("")
w(f"- CPU: {E['MACHINE_CPU']}, {E['MACHINE_CORES']} cores; memory {E['MACHINE_MEM']}; kernel {E['V_KERNEL']}")
w(f"- easgate {E['V_EASGATE'].replace('easgate ', '')} (git {E['V_GIT']}), {E['V_NGINX']}, HAProxy {E['V_HAPROXY']}, "
  f"{E['V_OPENSSL']}, libuv {E['V_UV']}")
w(f"- proxies: {E['WORKERS']} workers each (easgate `proxy.workers`, nginx `worker_processes`, HAProxy `nbthread`);"
  f" up to {E['POOL']} idle upstream connections kept per worker; fd limit {E['FDMAX']} per process (hard)")
w("- TLS 1.3 (P-256 key, session tickets) between easload and the proxy in every run; upstream")
w("  certificate verified where the upstream leg is TLS")
w("- **alike for all**: access logging off in nginx (`access_log off`), HAProxy (no `log`)")
w("  and easgate (`log.access: off`), plus one round of easgate with its access log on (a")
w("  file, JSON lines) in its own column. easgate filters every request with a policy (user-agent")
w("  allow and block lists, a DeviceId block list, two device rules: every step runs, none")
w("  blocks easload's phones; no Redis, so the device-state step finds no store) and counts")
w("  its metrics (admin listener with `/metrics` on). nginx and HAProxy only proxy.")
w("")

# ---- 1. the matrix ----
mx = [r for r in rows if r["tag"] == "mx"]
conns = sorted({r["conns"] for r in mx})
ups = [u for u in ("plain", "tls") if any(r["upstream"] == u for r in mx)]
summary = []
if mx:
    w("## Keep-alive Sync POSTs through a real HTTP backend, by connection count")
    w("")
    w("The backend is Debian's nginx answering every request with a fixed EAS Sync answer")
    w("(the WBXML exsim gives, ~500 bytes of body), on a plain port and on a TLS port. easload")
    w(f"sends `POST …?Cmd=Sync` (~300 bytes of head, 30-byte body) on N keep-alive connections,")
    w(f"closed loop, spread over {E['LOADPROCS']} easload processes whose latency histograms are")
    w(f"merged; {E['MDUR']} s per run. Proxy CPU per request: utime+stime of all its processes")
    w("and threads over the run (/proc/PID/stat) divided by the answers.")
    w("")
    w("Each run opens its connections (TLS handshakes in front, and behind the proxy as its")
    w("pool fills) inside the measured time: at 1,024 connections on a loaded machine that ramp")
    w("is a visible part of a run, in latency and in CPU per request alike, for every proxy.")
    w("")
    for c in conns:
        w(f"### {c} connections")
        w("")
        head()
        for u in ups:
            R = lambda p, u=u: runs("mx", p, conns=c, upstream=u)
            v = line(f"**req/s, {UPNAME[u]}**", lambda p: med(R(p), "rps"), 0)
            summary.append((c, u, "req/s", v))
            for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                v = line(f"latency {name} (ms)", lambda p, key=key: med(R(p), key, ms), 2)
                if key != "p50_us":
                    summary.append((c, u, name, v))
            v = line("proxy CPU per request (µs)", lambda p: med(R(p), "cpu_us_req"), 1)
            summary.append((c, u, "CPU/request", v))
            line("backend CPU (% of one core)", lambda p: med(R(p), "exsim_cpu"), 0, ratios=False)
            line("errors (all rounds)", lambda p: sum(r["errors"] for r in R(p)) if R(p) else None, 0, ratios=False)
        w("")
        for u in ups:
            w(f"Rounds, {UPNAME[u]}: " + "; ".join(
                f"{NAME[p]} {allv(runs('mx', p, conns=c, upstream=u), 'rps')} req/s, p99 "
                f"{allv(runs('mx', p, conns=c, upstream=u), 'p99_us', ms, 2)} ms" for p in PROX) + ".")
            w("")
    logr = [r for r in mx if r["proxy"] == "easgate-log"]
    if logr:
        lr = sorted({r["round"] for r in logr})
        w(f"### easgate with its access log on (round{'s' if len(lr) > 1 else ''} {', '.join(map(str, lr))})")
        w("")
        w("The same load, easgate with `log.access` set to a file (one JSON line per request), run")
        w("beside the log-off easgate in the same round(s); the ratio is log on / log off.")
        w("")
        w("| | log off | log on | on/off |")
        w("|---|---|---|---|")
        for c in conns:
            for u in ups:
                off = [r for r in runs("mx", "easgate", conns=c, upstream=u) if r["round"] in lr]
                on = runs("mx", "easgate-log", conns=c, upstream=u)
                for key, name, f, nd in (("rps", "req/s", lambda v: v, 0), ("p99_us", "p99 (ms)", ms, 2),
                                         ("cpu_us_req", "CPU/request (µs)", lambda v: v, 1)):
                    a, b = med(off, key, f), med(on, key, f)
                    w(f"| c{c}, {UPNAME[u]}: {name} | {fmt(a, nd)} | {fmt(b, nd)} | {ratio(b, a)} |")
        w("")

# ---- 2. exsim ----
if any(r["tag"] == "post" for r in rows):
    w("## Small EAS POSTs against exsim (keep-alive, TLS on both legs)")
    w("")
    w(f"Closed loop with {E['CONNS']} connections, one easload process, {E['DUR']} s per run; exsim (the")
    w("Exchange simulator) as the backend, its answer ~850 bytes.")
    w("")
    head()
    line("requests/s", lambda p: med(runs("post", p), "rps"), 0)
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        line(f"latency {name} (ms)", lambda p, key=key: med(runs("post", p), key, ms), 2)
    line("proxy CPU per request (µs)", lambda p: med(runs("post", p), "cpu_us_req"), 1)
    line("CPU of proxy (% of one core)", lambda p: med(runs("post", p), "proxy_cpu"), 0)
    line("CPU of exsim (% of one core)", lambda p: med(runs("post", p), "exsim_cpu"), 0, ratios=False)
    line("errors (all rounds)", lambda p: sum(r["errors"] for r in runs("post", p)), 0, ratios=False)
    w("")
    w("Rounds, requests/s: " + "; ".join(f"{NAME[p]} {allv(runs('post', p), 'rps')}" for p in PROX) + ".")
    d = runs("post", "direct")
    if d:
        w(f"Without a proxy (easload straight to exsim): {fmt(med(d, 'rps'), 0)} requests/s (rounds "
          f"{allv(d, 'rps')}), exsim using {fmt(med(d, 'exsim_cpu'), 0)} % of a core.")
    w("")
if any(r["tag"] == "rate" for r in rows):
    w(f"### The same requests at a fixed {E.get('RATE') or '?'} requests/s")
    w("")
    w("Below every proxy's capacity, so latency is the proxy's own delay rather than queueing;")
    w("easload counts latency from when a request was due.")
    w("")
    head()
    line("requests/s achieved", lambda p: med(runs("rate", p), "rps"), 0)
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        line(f"latency {name} (ms)", lambda p, key=key: med(runs("rate", p), key, ms), 2)
    line("CPU of proxy (% of one core)", lambda p: med(runs("rate", p), "proxy_cpu"), 0)
    w("")
    w("Rounds, p99 ms: " + "; ".join(f"{NAME[p]} {allv(runs('rate', p), 'p99_us', ms, 2)}" for p in PROX) + ".")
    w("")
if any(r["tag"] in ("hs", "hsr") for r in rows):
    w("### New TLS handshakes per second")
    w("")
    w("A new client connection (and TLS handshake) per request (`easload --new-conn`); the upstream")
    w("leg stays pooled. Full handshakes, then with session resumption (tickets).")
    w("")
    head()
    hs = lambda r: r["connects"] / r["seconds"] if r["seconds"] else 0
    for tag, name in (("hs", "full handshakes/s"), ("hsr", "resumed handshakes/s")):
        line(name, lambda p, tag=tag: statistics.median([hs(r) for r in runs(tag, p)]) if runs(tag, p) else None, 0)
    w("")
    w("Resumed with resumption on: " + "; ".join(
        f"{NAME[p]} {sum(r['resumed'] for r in runs('hsr', p)):,} of {sum(r['handshakes'] for r in runs('hsr', p)):,}"
        for p in PROX) + ".")
    w("")

# ---- 3. memory ----
hold = [r for r in rows if r["tag"] == "hold"]
complete = lambda r: r["held"] >= 0.99 * r["pings"]
per = lambda r: (r["rss_kb"] - r["base_kb"]) / r["held"] if r["held"] and complete(r) else None
for n in sorted({r["pings"] for r in hold}):
    w(f"## Memory per held Ping: {n:,} Pings held, TLS on both legs")
    w("")
    w("Each simulated phone holds one Ping (HeartbeatInterval 3540 s) through the proxy; exsim holds")
    w("it upstream, so the proxy keeps both legs (two TLS connections) per Ping. RSS is summed over")
    w("every process of the proxy: idle (1 s after start, nothing served), after a warm-up of 400")
    w("requests, and once exsim reports every Ping held. Per Ping: (with Pings − after warm-up) / held.")
    nr = len({r["round"] for r in hold if r["pings"] == n})
    w(f"{nr} round{'s' if nr != 1 else ''} per proxy (BENCH_HOLD_RUNS): memory varies little between rounds.")
    w("")
    head()
    H = lambda p: [r for r in hold if r["proxy"] == p and r["pings"] == n]
    line("Pings held (median)", lambda p: med(H(p), "held"), 0, ratios=False)
    line("processes", lambda p: med(H(p), "procs"), 0, ratios=False)
    v = line("idle RSS (MiB)", lambda p: med(H(p), "idle_kb", lambda v: v / 1024), 1)
    summary.append((n, "hold", "idle RSS", v))
    line("RSS after warm-up (MiB)", lambda p: med(H(p), "base_kb", lambda v: v / 1024), 1)
    line("RSS with the Pings (MiB)", lambda p: med(H(p), "rss_kb", lambda v: v / 1024), 1)
    v = line("**KiB per held Ping**", lambda p: statistics.median([per(r) for r in H(p) if per(r) is not None])
             if [r for r in H(p) if per(r) is not None] else None, 1)
    summary.append((n, "hold", "KiB/Ping", v))
    w("")
    w("Rounds, KiB per Ping: " + "; ".join(
        f"{NAME[p]} {', '.join(fmt(per(r), 1) for r in H(p) if per(r) is not None) or '—'}" for p in PROX) + ".")
    for p in PROX:
        for r in H(p):
            if not complete(r):
                w("")
                w(f"Left out: {NAME[p]} round {r['round']} held only {r['held']:,} of {r['pings']:,} Pings "
                  f"(easload counted {r.get('load_errors', '?')} errors).")
    w("")
if hold:
    w(f"A held Ping costs the proxy two file descriptors and the hard limit here is {E['FDMAX']} per")
    w(f"process: nginx's worker processes and HAProxy's one process hold them as they are; easgate")
    w(f"runs as enough processes on one port (SO_REUSEPORT, ≤ {E['FD_PER_PROC']} fds each) with the same")
    w("total number of event loops. Idle RSS is with the proxy's usual layout for that count.")
    w("")

w("## Profile of easgate")
w("")
if prof:
    w(f"`perf record -F 999 -g -p PID -- sleep {E['DUR']}` on the easgate process under the")
    w(f"{E.get('PROF_DESC', '')} load; `perf report --no-children --sort symbol`, top 15 (self time):")
    w("")
    w("```")
    w(prof)
    w("```")
    if dso:
        w("")
        w("The same samples by shared object (`--sort dso`):")
        w("")
        w("```")
        w(dso)
        w("```")
else:
    w("No profile (perf unavailable, or BENCH_PROFILE=0).")
w("")
w("## Exact commands")
w("")
w("```")
w(f"bench/run.sh BUILD   # BENCH_DURATION={E['DUR']} BENCH_RUNS={E['RUNS']} BENCH_MATRIX_CONNS='{E['MCONNS']}' "
  f"BENCH_MATRIX_DURATION={E['MDUR']} BENCH_BACKENDS='{E['BACKENDS']}' BENCH_LOAD_PROCS={E['LOADPROCS']} "
  f"BENCH_LOG_ROUNDS={E['LOGROUNDS']} BENCH_CONNS={E['CONNS']} BENCH_RATE={E['RATE']} BENCH_PINGS='{E['PINGS']}' "
  f"BENCH_HOLD_RUNS={E.get('HOLD_RUNS', E['RUNS'])} BENCH_WORKERS={E['WORKERS']} BENCH_POOL={E['POOL']}")
w(f"exsim --listen 127.0.0.1:UP --tls-cert exsim.crt --tls-key exsim.key --plain-listen 127.0.0.1:UP2 "
  f"--workers {E['WORKERS']} --ping-cap 3600")
w("nginx -c backend/nginx.conf   # the HTTP backend, plain and TLS ports")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections N/{E['LOADPROCS']} --id-offset K "
  f"--mix sync --duration {E['MDUR']} --json F   # x{E['LOADPROCS']}, merged")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']}")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']} --rate {E.get('RATE') or '?'}")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']} --new-conn --resume off|on")
w("easload --url https://localhost:PX --connections 0 --hold-pings N --hold-heartbeat 3540 --hold-rate 1000 --devices N --id-offset K --duration 600")
w("```")
CONF = E.get("CONF", "")
for name, path in (("easgate.yaml", "easgate1.yaml"), ("policy.yaml", "policy.yaml"),
                   ("nginx.conf (proxy)", "nginx/nginx.conf"), ("haproxy.cfg", "haproxy/haproxy.cfg"),
                   ("nginx.conf (backend)", "backend/nginx.conf")):
    f = os.path.join(CONF, path)
    if CONF and os.path.exists(f):
        w("")
        w(f"{name}, as generated (the last backend's runs; temporary paths and ports vary):")
        w("")
        w("```")
        w(open(f).read().rstrip())
        w("```")

# the summary, at the top: easgate's ratio to each peer, per measurement
if summary and "easgate" in PROX and PEERS:
    s = ["## Summary: easgate's ratio to each peer (medians)", "",
         "Throughput: above 1 is better for easgate; latency, CPU and memory: below 1 is better.", "",
         "| measurement | " + " | ".join(f"easgate/{NAME[p]}" for p in PEERS) + " |",
         "|---" * (len(PEERS) + 1) + "|"]
    for a, u, what, v in summary:
        label = f"c{a}, {UPNAME[u]}: {what}" if u != "hold" else f"{a:,} held Pings: {what}"
        s.append(f"| {label} | " + " | ".join(ratio(v.get("easgate"), v.get(p)) for p in PEERS) + " |")
    s += ["", "The run-to-run spread on this shared 2-core machine is wide (every round is listed",
          "under its table): treat a ratio within ±15 % of 1.0 as a tie.", ""]
    at = out.index("## Machine and versions")
    out[at:at] = s
print("\n".join(out))
