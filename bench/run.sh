#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: easgate side by side with nginx, same machine, same
# run, same Exchange simulator, same load; writes bench/RESULTS.md.
#
# For each proxy (easgate, then Debian's nginx as a plain TLS reverse proxy
# with upstream keep-alive and the same number of workers), three rounds of:
#   1. small EAS POSTs (Sync, ~300-byte request, ~850-byte answer), TLS on
#      both legs, keep-alive, closed loop with $CONNS connections, then at a
#      fixed $RATE requests/s (latency without queueing);
#   2. new TLS handshakes per second (a new connection per request), with
#      session resumption off and on;
#   3. RSS per held Ping with $PINGS Pings held through the proxy.
# Rounds alternate easgate / nginx so that drift on a shared machine hits both.
# Every figure in RESULTS.md is the median of the rounds. Then easgate is
# profiled with perf under the small-POST load.
#
# Knobs (environment): BENCH_DURATION (s per run, default 10), BENCH_RUNS (3),
# BENCH_CONNS (50), BENCH_RATE (2000), BENCH_PINGS (10000), BENCH_WORKERS (nproc),
# BENCH_OUT (bench/RESULTS.md), BENCH_PROXIES ("easgate nginx"),
# BENCH_PROFILE (1; 0 skips perf). Everything is bounded in time; the script
# stops only what it started, by pid.
set -euo pipefail

BUILD=$(cd "${1:?usage: bench/run.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-50}
PINGS=${BENCH_PINGS:-10000}
WORKERS=${BENCH_WORKERS:-$(nproc)}
OUT=${BENCH_OUT:-$SRC/bench/RESULTS.md}
PROXIES=${BENCH_PROXIES:-easgate nginx}
PROFILE=${BENCH_PROFILE:-1}
RATE=${BENCH_RATE:-2000}
FD_PER_PROC=18000 # what one proxy process may use of the 20,000-fd hard limit

T=$(mktemp -d "${TMPDIR:-/tmp}/easgate-bench.XXXXXX")
PIDS=()
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -n "${BENCH_KEEP:-}" ] && log "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in exsim easload; do [ -x "$BUILD/$tool" ] || die "no $BUILD/$tool: build first"; done
HAVE_EASGATE=0; [ -x "$BUILD/easgate" ] && HAVE_EASGATE=1
HAVE_NGINX=0; command -v nginx >/dev/null && HAVE_NGINX=1
command -v python3 >/dev/null || die "python3 is needed to compute medians"

# Raise the soft fd limit to the hard one (20,000 here; it cannot go higher).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDMAX=$(ulimit -n)

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listens on $1 after 10 s"
}
start() { # start NAME CMD...: background, log in $T/NAME.log, pid in $LAST
  local name=$1; shift
  "$@" >"$T/$name.log" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}
stop() { # stop PID...: TERM, wait up to 10 s, KILL
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
# pids of a process and its children (nginx master + workers)
tree() { local p; for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done; }
cpu_ticks() { # utime+stime of pids, in clock ticks (all threads)
  local p s=0
  for p in $(tree "$@"); do
    [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$s"
}
rss_kb() {
  local p s=0
  for p in $(tree "$@"); do
    [ -r "/proc/$p/status" ] && s=$((s + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status")))
  done
  echo "$s"
}
HZ=$(getconf CLK_TCK)

# write_report DIR: RESULTS.md from the measurements kept in DIR (results.jsonl,
# env, profile, generated configs). BENCH_REPORT_ONLY=DIR re-runs just this.
write_report() {
  local D=$1
  [ -r "$D/env" ] && [ -r "$D/results.jsonl" ] || die "$D has no env or results.jsonl"
  # shellcheck disable=SC1091
  source "$D/env"
  RATE=${RATE:-}
  export DUR RUNS CONNS RATE PINGS WORKERS FDMAX FD_PER_PROC MACHINE_CPU MACHINE_CORES MACHINE_MEM \
    V_EASGATE V_NGINX V_OPENSSL V_UV V_GIT V_KERNEL
  : > "$D/profile-dso.txt"
  if [ -s "$D/perf.data" ] && command -v perf >/dev/null; then
    perf report -i "$D/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -E '^ +[0-9]' | head -8 | awk '{ printf "%7s  %s\n", $1, $2 }' > "$D/profile-dso.txt" || true
  fi
NGINX_CONF="$D/nginx/nginx.conf" EASGATE_CONF="$D/easgate1.yaml" \
  python3 - "$D/results.jsonl" "$D/profile.txt" "$D/profile-dso.txt" > "$OUT.tmp" <<'PY'
import json, os, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
prof = open(sys.argv[2]).read().rstrip() if os.path.exists(sys.argv[2]) else ""
dso = open(sys.argv[3]).read().rstrip() if os.path.exists(sys.argv[3]) else ""
E = os.environ

def runs(tag, proxy):
    return [r for r in rows if r["tag"] == tag and r["proxy"] == proxy]

def med(tag, proxy, key, f=lambda v: v):
    v = [f(r[key]) for r in runs(tag, proxy) if key in r]
    return statistics.median(v) if v else None

def fmt(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f}"

def ratio(a, b, nd=2):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.{nd}f}×"

def allv(tag, proxy, key, f=lambda v: v, nd=0):
    return ", ".join(fmt(f(r[key]), nd) for r in runs(tag, proxy) if key in r) or "—"

out = []
w = out.append
w("# easgate vs nginx: measured side by side")
w("")
w("Written by `bench/run.sh` (do not edit by hand; re-run it). Every figure is the")
w(f"median of {E['RUNS']} runs; the individual runs are listed beside it. easgate and")
w("nginx ran in alternation against the same Exchange simulator (exsim), driven by")
w("the same load generator (easload), in the same invocation of the script.")
w("")
w("**The load generator, the simulator and the proxy share one machine** (a virtual")
w("machine whose host may run other work meanwhile): absolute figures")
w("are low and noisy; the easgate/nginx ratios are the result that matters.")
w("")
w("## Machine and versions")
w("")
w(f"- CPU: {E['MACHINE_CPU']}, {E['MACHINE_CORES']} cores; memory {E['MACHINE_MEM']}; kernel {E['V_KERNEL']}")
w(f"- easgate {E['V_EASGATE'].replace('easgate ', '')} (git {E['V_GIT']}), {E['V_NGINX']}, {E['V_OPENSSL']}, libuv {E['V_UV']}")
w(f"- proxies: {E['WORKERS']} workers each (easgate `proxy.workers`, nginx `worker_processes`); fd limit {E['FDMAX']} per process (hard, cannot be raised here)")
w(f"- load: {E['CONNS']} keep-alive connections, {E['DUR']} s per run; TLS 1.3 on both legs, certificate verified on the upstream leg")
w("")
w("## Small EAS POSTs (keep-alive, TLS on both legs)")
w("")
w("Closed loop: each connection sends `POST /Microsoft-Server-ActiveSync?Cmd=Sync&…` (a 30-byte WBXML")
w("Sync body, ~300 bytes of request head) as soon as its previous answer (~850 bytes) is in.")
w("Latency is per request, measured by easload.")
w("")
w("| | easgate | nginx | easgate/nginx | target |")
w("|---|---|---|---|---|")
rps_e, rps_n = med("post", "easgate", "rps"), med("post", "nginx", "rps")
w(f"| requests/s | {fmt(rps_e,0)} | {fmt(rps_n,0)} | {ratio(rps_e, rps_n)} | ≥ 1.0× |")
for key, name, tgt in (("p50_us", "p50", ""), ("p99_us", "p99", "≤ 1.0×"), ("p999_us", "p99.9", "")):
    a, b = med("post", "easgate", key, lambda v: v / 1000), med("post", "nginx", key, lambda v: v / 1000)
    w(f"| latency {name} (ms) | {fmt(a,2)} | {fmt(b,2)} | {ratio(a, b)} | {tgt} |")
for key, name in (("proxy_cpu", "proxy"), ("exsim_cpu", "exsim"), ("load_cpu", "easload")):
    w(f"| CPU of {name} (% of one core) | {fmt(med('post','easgate',key),0)} | {fmt(med('post','nginx',key),0)} | | |")
w(f"| errors (all runs) | {sum(r['errors'] for r in runs('post','easgate'))} | {sum(r['errors'] for r in runs('post','nginx'))} | | 0 |")
w("")
w(f"Runs, requests/s: easgate {allv('post','easgate','rps')}; nginx {allv('post','nginx','rps')}.")
d = med("post", "direct", "rps")
w(f"Without a proxy (easload straight to exsim, same load): {fmt(d,0)} requests/s (runs {allv('post','direct','rps')}),")
w(f"exsim using {fmt(med('post','direct','exsim_cpu'),0)} % of a core. The simulator is not the bottleneck: it")
w("serves the direct load well above either proxy's median, and under the proxied load it used:")
w("")
for p in ("easgate", "nginx"):
    a, b = med("post", p, "exsim_cpu"), med("post", p, "proxy_cpu")
    if a is not None and b:
        w(f"- {a:.0f} % of a core while {p} used {b:.0f} % ({a / b:.2f} of the proxy's CPU);")
w("")
w("CPU is read from /proc/PID/stat (all threads and processes) before and after each run.")
w("")
if runs("rate", "easgate") or runs("rate", "nginx"):
    w(f"### The same requests at a fixed {E.get('RATE') or '?'} requests/s")
    w("")
    w("Below both proxies' capacity, so latency is the proxy's own delay rather than")
    w("queueing. easload sends each request when it is due (1 ms timer resolution)")
    w("and counts latency from that moment, so a stall cannot hide behind a busy connection.")
    w("")
    w("| | easgate | nginx | easgate/nginx |")
    w("|---|---|---|---|")
    for key, name in (("rps", "requests/s achieved"),):
        a, b = med("rate", "easgate", key), med("rate", "nginx", key)
        w(f"| {name} | {fmt(a,0)} | {fmt(b,0)} | {ratio(a, b)} |")
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        a, b = med("rate", "easgate", key, lambda v: v / 1000), med("rate", "nginx", key, lambda v: v / 1000)
        w(f"| latency {name} (ms) | {fmt(a,2)} | {fmt(b,2)} | {ratio(a, b)} |")
    w(f"| CPU of proxy (% of one core) | {fmt(med('rate','easgate','proxy_cpu'),0)} | {fmt(med('rate','nginx','proxy_cpu'),0)} | {ratio(med('rate','easgate','proxy_cpu'), med('rate','nginx','proxy_cpu'))} |")
    w("")
    w(f"Runs, p99 ms: easgate {allv('rate','easgate','p99_us', lambda v: v/1000, 2)}; nginx {allv('rate','nginx','p99_us', lambda v: v/1000, 2)}.")
    w("")
w("## New TLS handshakes per second")
w("")
w("A new client connection (and TLS handshake) for every request (`easload --new-conn`);")
w("the proxy's upstream leg stays pooled. Full handshakes (no resumption), then with")
w("session resumption (tickets) on.")
w("")
w("| | easgate | nginx | easgate/nginx |")
w("|---|---|---|---|")
for tag, name in (("hs", "full handshakes/s"), ("hsr", "resumed handshakes/s")):
    hs = lambda r: r["connects"] / r["seconds"] if r["seconds"] else 0
    a = statistics.median([hs(r) for r in runs(tag, "easgate")]) if runs(tag, "easgate") else None
    b = statistics.median([hs(r) for r in runs(tag, "nginx")]) if runs(tag, "nginx") else None
    w(f"| {name} | {fmt(a,0)} | {fmt(b,0)} | {ratio(a, b)} |")
for tag in ("hsr",):
    for p in ("easgate", "nginx"):
        rr = runs(tag, p)
        if rr:
            w(f"")
            w(f"{p}: {sum(r['resumed'] for r in rr)} of {sum(r['handshakes'] for r in rr)} handshakes resumed with resumption on.")
w("")
w(f"## Memory per held Ping ({E['PINGS']} Pings held through the proxy)")
w("")
w("Each simulated phone holds one Ping (HeartbeatInterval 3540 s) open through the proxy;")
w("exsim holds it upstream, so the proxy keeps both legs (two TLS connections) per Ping.")
w("RSS is summed over every process of the proxy, measured once exsim reports every Ping")
w("held, minus the RSS after a warm-up of 400 requests with no Ping held.")
w("")
w("| | easgate | nginx | easgate/nginx | target |")
w("|---|---|---|---|---|")
# a round where not every Ping got held (connections still in handshake or
# being retried) says little about memory per held Ping: left out, and listed
complete = lambda r: r["held"] >= 0.99 * r["pings"]
per = lambda r: (r["rss_kb"] - r["base_kb"]) / r["held"] if r["held"] and complete(r) else None
pe = [per(r) for r in runs("hold", "easgate") if per(r) is not None]
pn = [per(r) for r in runs("hold", "nginx") if per(r) is not None]
pe_m = statistics.median(pe) if pe else None
pn_m = statistics.median(pn) if pn else None
w(f"| Pings held (median) | {fmt(med('hold','easgate','held'),0)} | {fmt(med('hold','nginx','held'),0)} | | {E['PINGS']} |")
w(f"| processes | {fmt(med('hold','easgate','procs'),0)} | {fmt(med('hold','nginx','procs'),0)} | | |")
w(f"| RSS before (MiB) | {fmt(med('hold','easgate','base_kb', lambda v: v/1024),1)} | {fmt(med('hold','nginx','base_kb', lambda v: v/1024),1)} | | |")
w(f"| RSS with the Pings (MiB) | {fmt(med('hold','easgate','rss_kb', lambda v: v/1024),1)} | {fmt(med('hold','nginx','rss_kb', lambda v: v/1024),1)} | | |")
w(f"| **KiB per held Ping** | {fmt(pe_m,1)} | {fmt(pn_m,1)} | {ratio(pe_m, pn_m)} | ≤ 0.5× |")
w("")
w(f"Runs, KiB per Ping: easgate {', '.join(fmt(v,1) for v in pe) or '—'}; nginx {', '.join(fmt(v,1) for v in pn) or '—'}.")
for p in ("easgate", "nginx"):
    for r in runs("hold", p):
        if not complete(r):
            w("")
            w(f"Left out: {p} round {r['round']} held only {r['held']:,} of {r['pings']:,} Pings "
              f"(easload counted {r.get('load_errors', '?')} errors).")
w("")
w("Why the layout: a held Ping costs the proxy two file descriptors and the hard limit")
w(f"here is {E['FDMAX']} per process, so nginx's {E['WORKERS']} worker processes hold them as they are,")
w(f"and easgate (one process, `workers` threads) is run as enough processes on the same port")
w(f"(SO_REUSEPORT; ≤ {E['FD_PER_PROC']} fds each) with the same total number of event loops.")
w("")
w("### 50,000 and 100,000 held Pings: extrapolated, not measured")
w("")
w("At 50,000 Pings one machine needs 100,000 proxy fds (6 processes at this fd limit) and")
w("more loopback connections to one address:port than the ephemeral port range allows")
w("(28,232 ports: /proc/sys/net/ipv4/ip_local_port_range), so it was not run here. The")
w("figure below is the RSS before plus the measured KiB per Ping times the number of")
w("Pings — memory per held connection does not grow with their number in either proxy")
w("(fixed per-connection structures and buffers), so the line is straight.")
w("")
w("| Pings | easgate RSS (MiB) | nginx RSS (MiB) |")
w("|---|---|---|")
be = med("hold", "easgate", "base_kb"); bn = med("hold", "nginx", "base_kb")
for n in (50000, 100000):
    a = (be + pe_m * n) / 1024 if be is not None and pe_m is not None else None
    b = (bn + pn_m * n) / 1024 if bn is not None and pn_m is not None else None
    w(f"| {n:,} | {fmt(a,0)} | {fmt(b,0)} |")
w("")
w("100,000 held Pings on this 24 GiB machine: memory is not the limit (see the table);")
w("file descriptors are: 200,000 proxy fds means 12 proxy processes at 18,000 fds each,")
w("or a raised hard limit (`LimitNOFILE=` in the service unit) on a real host.")
w("")
w("## Profile of easgate under the small-POST load")
w("")
if prof:
    w(f"`perf record -F 999 -g -p PID -- sleep {E['DUR']}` on the easgate process while easload ran the")
    w("small-POST load; `perf report --no-children --sort symbol`, top 10 (self time):")
    w("")
    w("```")
    w(prof)
    w("```")
    if dso:
        w("")
        w("The same samples by shared object (`--sort dso`): where the time goes at large.")
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
w(f"bench/run.sh BUILD   # BENCH_DURATION={E['DUR']} BENCH_RUNS={E['RUNS']} BENCH_CONNS={E['CONNS']} BENCH_PINGS={E['PINGS']} BENCH_WORKERS={E['WORKERS']}")
w(f"exsim --listen 127.0.0.1:UP --tls-cert exsim.crt --tls-key exsim.key --workers {E['WORKERS']} --ping-cap 3600")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']}")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']} --rate {E.get('RATE') or '?'}")
w(f"easload --url https://localhost:PX --cafile ca.crt --connections {E['CONNS']} --mix sync --duration {E['DUR']} --new-conn --resume off|on")
w(f"easload --url https://localhost:PX --connections 0 --hold-pings N --hold-heartbeat 3540 --hold-rate 1000 --devices N --id-offset K --duration 600")
w("```")
for name, path in (("easgate.yaml (one process)", E.get("EASGATE_CONF")), ("nginx.conf", E.get("NGINX_CONF"))):
    if path and os.path.exists(path):
        w("")
        w(f"{name}, as generated (temporary paths and ports vary):")
        w("")
        w("```")
        w(open(path).read().rstrip())
        w("```")
# the verdicts, at the top
def verdict(val, ok):
    return "not measured" if val is None else ("met" if ok(val) else "**not met**")
p99_e, p99_n = med("post", "easgate", "p99_us"), med("post", "nginx", "p99_us")
thr = rps_e / rps_n if rps_e and rps_n else None
p99r = p99_e / p99_n if p99_e and p99_n else None
memr = pe_m / pn_m if pe_m and pn_m else None
p99f_e, p99f_n = med("rate", "easgate", "p99_us"), med("rate", "nginx", "p99_us")
p99f = p99f_e / p99f_n if p99f_e and p99f_n else None
summary = [
    "## Summary",
    "",
    "| target (issue 5) | measured | verdict |",
    "|---|---|---|",
    f"| throughput ≥ 1.0× nginx (small POSTs) | {ratio(rps_e, rps_n)} | {verdict(thr, lambda v: v >= 1.0)} |",
    f"| p99 latency ≤ nginx's (closed loop) | {ratio(p99_e, p99_n)} | {verdict(p99r, lambda v: v <= 1.0)} |",
    f"| p99 latency ≤ nginx's (fixed rate) | {ratio(p99f_e, p99f_n)} | {verdict(p99f, lambda v: v <= 1.0)} |",
    f"| RSS per held Ping ≤ 0.5× nginx's | {ratio(pe_m, pn_m)} | {verdict(memr, lambda v: v <= 0.5)} |",
    "| 100,000 held Pings on this machine | extrapolated only (see below) | not measured |",
    "",
    "The run-to-run spread on this shared 2-core machine is wide (individual runs are",
    "listed under each table): treat a ratio within ±15 % of 1.0 as a tie.",
    "",
]
at = out.index("## Machine and versions")
out[at:at] = summary
print("\n".join(out))
PY
  mv "$OUT.tmp" "$OUT"
  log "wrote $OUT"
}

if [ -n "${BENCH_REPORT_ONLY:-}" ]; then
  write_report "$(cd "$BENCH_REPORT_ONLY" && pwd)"
  exit 0
fi

CERTS="$T/certs"
bash "$SRC/certs/mkcerts" "$CERTS" >/dev/null

# ---- the Exchange simulator (shared by every run) ----
UP=$(port)
start exsim "$BUILD/exsim" --listen "127.0.0.1:$UP" --tls-cert "$CERTS/exsim.crt" \
  --tls-key "$CERTS/exsim.key" --workers "$WORKERS" --ping-cap 3600
EXSIM=$LAST
wait_port "$UP"

exsim_held() { # Pings exsim holds now, summed over its worker processes
  kill -USR1 "$EXSIM"  # each worker prints a JSON line of stats; the last one counts
  sleep 0.3
  python3 - "$T/exsim.log" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1], errors="replace"):
    line = line.strip().strip("\0")
    if line.startswith("{"):
        try:
            d = json.loads(line)
            last[d["pid"]] = d["held"]
        except Exception:
            pass
print(sum(last.values()))
PY
}

# ---- proxies ----
PX_PIDS=()
PX_PORT=0

# easgate's handshake, header and upstream_connect timeouts are set to nginx's
# defaults (nginx 1.22 times the TLS handshake with client_header_timeout;
# that and proxy_connect_timeout are 60 s) so both proxies are configured
# alike under the held-Ping ramp on a busy box.
start_easgate() { # start_easgate NPROC WORKERS_EACH
  local nproc=$1 w=$2 i adm
  PX_PORT=$(port)
  PX_PIDS=()
  for i in $(seq "$nproc"); do
    adm=off; [ "$i" = 1 ] && adm="127.0.0.1:$(port)"
    cat > "$T/easgate$i.yaml" <<YAML
proxy:
  workers: $w
  admin_listen: $adm
  instances:
    - name: bench
      listen: 127.0.0.1:$PX_PORT
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: https://localhost:$UP, ca: $CERTS/ca.crt }
  timeouts: { drain_grace: 1s, handshake: 60s, header: 60s, upstream_connect: 60s }
log: { access: "off", level: warn }
YAML
    start "easgate$i" "$BUILD/easgate" proxy -c "$T/easgate$i.yaml"
    PX_PIDS+=("$LAST")
    wait_port "$PX_PORT"
  done
}

start_nginx() { # start_nginx WORKERS
  local w=$1 d="$T/nginx"
  PX_PORT=$(port)
  mkdir -p "$d"
  local user=""
  [ "$(id -u)" = 0 ] && user="user root;"
  cat > "$d/nginx.conf" <<NGX
# A plain TLS reverse proxy to the same exsim: what nginx does for EAS
# without filtering. Streaming both ways (no buffering), upstream keep-alive.
$user
worker_processes $w;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $FDMAX;
events { worker_connections $((FDMAX - 500)); }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  keepalive_timeout 75s;
  keepalive_requests 100000000;
  client_max_body_size 0;
  upstream exsim { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$PX_PORT ssl;
    ssl_certificate $CERTS/proxy.crt;
    ssl_certificate_key $CERTS/proxy.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:20m;
    location / {
      proxy_pass https://exsim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:$UP;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 3700s;
      proxy_send_timeout 3700s;
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $CERTS/ca.crt;
      proxy_ssl_session_reuse on;
    }
  }
}
NGX
  start nginx nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -g 'daemon off;'
  PX_PIDS=("$LAST")
  wait_port "$PX_PORT"
}

start_proxy() { # start_proxy NAME [held-Ping layout]
  case $1 in
  easgate)
    if [ "${2:-}" = hold ]; then
      # two fds per held Ping (phone side, Exchange side): spread over
      # processes on the same port (SO_REUSEPORT), $WORKERS loops in all
      local n=$(( (2 * PINGS + FD_PER_PROC - 1) / FD_PER_PROC ))
      [ "$n" -lt 1 ] && n=1
      local w=$(( WORKERS / n )); [ "$w" -lt 1 ] && w=1
      start_easgate "$n" "$w"
    else
      start_easgate 1 "$WORKERS"
    fi ;;
  nginx) start_nginx "$WORKERS" ;;
  esac
  sleep 0.5
}
stop_proxy() { stop "${PX_PIDS[@]}"; PX_PIDS=(); }

RES="$T/results.jsonl"
: > "$RES"
record() { echo "$1" >> "$RES"; }

# easload_run TAG PROXY ROUND ARGS...: one measured load run, with the CPU
# used meanwhile by the proxy, exsim and easload.
easload_run() {
  local tag=$1 proxy=$2 round=$3; shift 3
  local c0 e0 t0 c1 e1 t1 lc
  c0=$(cpu_ticks "${PX_PIDS[@]}"); e0=$(cpu_ticks "$EXSIM"); t0=$(date +%s%N)
  "$BUILD/easload" --url "https://localhost:$PX_PORT" --cafile "$CERTS/ca.crt" --quiet \
    --json "$T/run.json" "$@" || log "easload reported errors ($tag $proxy $round)"
  t1=$(date +%s%N); c1=$(cpu_ticks "${PX_PIDS[@]}"); e1=$(cpu_ticks "$EXSIM")
  lc=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["cpu_s"])' "$T/run.json")
  python3 - "$T/run.json" "$tag" "$proxy" "$round" "$(( (c1 - c0) ))" "$(( (e1 - e0) ))" \
    "$lc" "$(( (t1 - t0) / 1000000 ))" "$HZ" >> "$RES" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
tag, proxy, rnd, pc, ec, lc, ms, hz = sys.argv[2:]
wall = int(ms) / 1000.0
d.update(tag=tag, proxy=proxy, round=int(rnd),
         proxy_cpu=int(pc) / int(hz) / wall * 100, exsim_cpu=int(ec) / int(hz) / wall * 100,
         load_cpu=float(lc) / wall * 100)
print(json.dumps(d))
PY
  log "$tag $proxy round $round: $(python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print("%.0f req/s, p99 %.2f ms, %d handshakes, %d errors"%(d["rps"],d["p99_us"]/1e3,d["handshakes"],d["errors"]))' "$T/run.json")"
}

# hold_run PROXY ROUND: RSS of the proxy before and with $PINGS held Pings.
hold_run() {
  local proxy=$1 round=$2 base held rss i pids=() per n0 t_end
  start_proxy "$proxy" hold
  # warm up (TLS contexts, pools, first allocations) before the baseline
  "$BUILD/easload" --url "https://localhost:$PX_PORT" --quiet --connections 4 --mix sync \
    --requests 400 --duration 20 >/dev/null || true
  sleep 1
  base=$(rss_kb "${PX_PIDS[@]}")
  n0=$(exsim_held)
  # one easload process per $FD_PER_PROC Pings; distinct devices
  local per_proc=$FD_PER_PROC left=$PINGS off=0 n
  while [ "$left" -gt 0 ]; do
    n=$(( left < per_proc ? left : per_proc ))
    start "hold$off" "$BUILD/easload" --url "https://localhost:$PX_PORT" --quiet --connections 0 \
      --hold-pings "$n" --hold-heartbeat 3540 --hold-rate 1000 --id-offset "$off" --devices "$n" \
      --duration 600 --json "$T/hold-$proxy-$round-$off.json"
    pids+=("$LAST")
    left=$((left - n)); off=$((off + n))
  done
  # wait (bounded: 240 s, or 20 s without progress) until exsim holds them
  # all: then every one has crossed the proxy
  local t_end=$(( $(date +%s) + 240 )) last=-1 t_last
  t_last=$(date +%s)
  held=0
  while [ "$(date +%s)" -lt "$t_end" ]; do
    held=$(( $(exsim_held) - n0 ))
    [ "$held" -ge "$PINGS" ] && break
    if [ "$held" != "$last" ]; then last=$held; t_last=$(date +%s); fi
    [ $(( $(date +%s) - t_last )) -gt 20 ] && break
    sleep 2
  done
  sleep 2
  rss=$(rss_kb "${PX_PIDS[@]}")
  held=$(( $(exsim_held) - n0 ))
  log "hold $proxy round $round: $held of $PINGS Pings held, RSS $base -> $rss KiB"
  record "{\"tag\":\"hold\",\"proxy\":\"$proxy\",\"round\":$round,\"pings\":$PINGS,\"held\":$held,\"base_kb\":$base,\"rss_kb\":$rss,\"procs\":$(tree "${PX_PIDS[@]}" | wc -l)}"
  for i in "${pids[@]}"; do kill -INT "$i" 2>/dev/null || true; done
  stop "${pids[@]}"
  local errs=0 f e
  for f in "$T"/hold-"$proxy"-"$round"-*.json; do
    # a missing or cut file (an easload that was killed) is said, not fatal
    if ! e=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$f" 2>/dev/null); then
      log "hold $proxy round $round: no readable results in $f"
      continue
    fi
    errs=$((errs + e))
  done
  [ "$errs" = 0 ] || log "hold $proxy round $round: easload counted $errs errors (see $T/hold-$proxy-$round-*.json)"
  sed -i "\$s/}\$/,\"load_errors\":${errs:-0}}/" "$RES"
  stop_proxy
  sleep 1
}

# ---- the runs ----
avail=""
for p in $PROXIES; do
  case $p in
  easgate) [ "$HAVE_EASGATE" = 1 ] && avail="$avail easgate" || log "no $BUILD/easgate: nginx side only" ;;
  nginx) [ "$HAVE_NGINX" = 1 ] && avail="$avail nginx" || log "no nginx installed: easgate side only" ;;
  esac
done
[ -n "$avail" ] || die "neither easgate nor nginx can run"

# the simulator on its own, for scale: the ceiling no proxy can beat here
PX_PIDS=(); PX_PORT=$UP
for r in $(seq "$RUNS"); do
  easload_run post direct "$r" --connections "$CONNS" --mix sync --duration "$DUR"
done

for r in $(seq "$RUNS"); do
  for p in $avail; do
    start_proxy "$p"
    easload_run post "$p" "$r" --connections "$CONNS" --mix sync --duration "$DUR"
    easload_run rate "$p" "$r" --connections "$CONNS" --mix sync --duration "$DUR" --rate "$RATE"
    easload_run hs "$p" "$r" --connections "$CONNS" --mix sync --duration "$DUR" --new-conn --resume off
    easload_run hsr "$p" "$r" --connections "$CONNS" --mix sync --duration "$DUR" --new-conn --resume on
    stop_proxy
  done
done
if [ "$PINGS" -gt 0 ]; then
  for r in $(seq "$RUNS"); do
    for p in $avail; do hold_run "$p" "$r"; done
  done
fi

# ---- profile of easgate under the small-POST load ----
PROF="$T/profile.txt"
: > "$PROF"
if [ "$PROFILE" = 1 ] && [ "$HAVE_EASGATE" = 1 ] && command -v perf >/dev/null; then
  start_proxy easgate
  "$BUILD/easload" --url "https://localhost:$PX_PORT" --quiet --connections "$CONNS" --mix sync \
    --duration "$((DUR + 4))" >/dev/null &
  LOADPID=$!
  sleep 2
  if timeout $((DUR + 30)) perf record -q -F 999 -g -o "$T/perf.data" -p "${PX_PIDS[0]}" -- sleep "$DUR" \
    >/dev/null 2>&1; then
    perf report -i "$T/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 \
      2>/dev/null | grep -E '^ +[0-9]' | head -10 |
      awk '{ printf "%7s  %-4s %s\n", $1, $2, $3 }' > "$PROF" || true
  else
    log "perf record failed (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))"
  fi
  wait "$LOADPID" 2>/dev/null || true
  stop_proxy
fi

# ---- RESULTS.md ----
MACHINE_CPU=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
MACHINE_CORES=$(nproc)
MACHINE_MEM=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
V_EASGATE=$([ "$HAVE_EASGATE" = 1 ] && "$BUILD/easgate" version || echo "not built")
V_NGINX=$([ "$HAVE_NGINX" = 1 ] && nginx -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
V_OPENSSL=$(openssl version)
V_UV=$(pkg-config --modversion libuv 2>/dev/null || echo "?")
V_GIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo "?")
V_KERNEL=$(uname -r)
declare -p DUR RUNS CONNS RATE PINGS WORKERS FDMAX FD_PER_PROC MACHINE_CPU MACHINE_CORES MACHINE_MEM \
  V_EASGATE V_NGINX V_OPENSSL V_UV V_GIT V_KERNEL | sed 's/^declare -[a-z-]* //' > "$T/env"
write_report "$T"
