#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: easgate side by side with nginx and HAProxy, same
# machine, same run, same backends, same load; writes bench/RESULTS.md.
#
# Three proxies (easgate with its policy and metrics on; Debian's nginx and
# HAProxy as plain reverse proxies with upstream keep-alive, the same number
# of workers/threads and no access log), measured:
#   1. keep-alive Sync POSTs at $MCONNS connections (64, 256, 1024) through
#      a real HTTP server as backend: Debian's nginx answering every POST with
#      a fixed EAS Sync answer, on a plain and on a TLS port (TLS 1.3 in
#      front in every case); p50/p99/p99.9 and proxy CPU per request. One
#      extra round of easgate with its access log on;
#   2. against exsim (the Exchange simulator), TLS on both legs: small EAS
#      POSTs with $CONNS connections, closed loop and at a fixed $RATE
#      requests/s; new TLS handshakes per second (resumption off and on);
#   3. RSS per held Ping (TLS on both legs) at each count of $PINGS, and
#      idle RSS.
# Rounds interleave the proxies (A B C A B C ...) so that drift on a shared
# machine hits all of them; every figure is the median of the rounds. Then
# easgate is profiled with perf under the c256 TLS-backend load.
#
# Knobs (environment): BENCH_QUICK (1: a miniature run for the test suite,
# every other knob then defaults small), BENCH_DURATION (s per run, 10),
# BENCH_RUNS (3), BENCH_MATRIX_CONNS ("64 256 1024"), BENCH_MATRIX_DURATION
# (s, = BENCH_DURATION), BENCH_BACKENDS ("plain tls"), BENCH_LOAD_PROCS
# (easload processes per matrix run, 2), BENCH_LOG_ROUNDS (rounds with
# easgate's access log on, 1), BENCH_SECTIONS ("matrix exsim hold": which of
# 1-3 run), BENCH_EXSIM_RUNS ("post rate hs hsr": which runs of 2),
# BENCH_CONNS (50), BENCH_RATE (2000),
# BENCH_PINGS ("5000 9000"; 0 skips), BENCH_HOLD_RUNS (rounds of 3, = RUNS), BENCH_WORKERS (nproc), BENCH_POOL
# (idle upstream connections kept per worker, 1024), BENCH_OUT
# (bench/RESULTS.md), BENCH_PROXIES ("easgate nginx haproxy"), BENCH_PROFILE
# (1; 0 skips perf), BENCH_KEEP (keep the temp dir). Everything is bounded
# in time; the script stops only what it started, by pid.
set -euo pipefail

BUILD=$(cd "${1:?usage: bench/run.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  # the test suite's smoke run: every path once, in about a minute
  : "${BENCH_DURATION:=1}" "${BENCH_RUNS:=1}" "${BENCH_CONNS:=8}" "${BENCH_PINGS:=200}"
  : "${BENCH_PROFILE:=0}" "${BENCH_MATRIX_CONNS:=16}" "${BENCH_RATE:=500}"
  : "${BENCH_EXSIM_RUNS:=post hs}"
fi
DUR=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-50}
PINGS=${BENCH_PINGS:-5000 9000}
WORKERS=${BENCH_WORKERS:-$(nproc)}
OUT=${BENCH_OUT:-$SRC/bench/RESULTS.md}
PROXIES=${BENCH_PROXIES:-easgate nginx haproxy}
PROFILE=${BENCH_PROFILE:-1}
RATE=${BENCH_RATE:-2000}
MCONNS=${BENCH_MATRIX_CONNS:-64 256 1024}
MDUR=${BENCH_MATRIX_DURATION:-$DUR}
BACKENDS=${BENCH_BACKENDS:-plain tls}
LOADPROCS=${BENCH_LOAD_PROCS:-2}
LOGROUNDS=${BENCH_LOG_ROUNDS:-1}
POOL=${BENCH_POOL:-1024}
SECTIONS=${BENCH_SECTIONS:-matrix exsim hold}
EXSIM_RUNS=${BENCH_EXSIM_RUNS:-post rate hs hsr}
HOLD_RUNS=${BENCH_HOLD_RUNS:-$RUNS} # memory varies little between rounds, a ramp takes long
FD_PER_PROC=18000 # what one proxy process may use of the 20,000-fd hard limit
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg)

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
HAVE_HAPROXY=0; command -v haproxy >/dev/null && HAVE_HAPROXY=1
command -v python3 >/dev/null || die "python3 is needed to compute medians"
command -v curl >/dev/null || die "curl is needed to take exsim's Sync answer for the backend"

# Raise the soft fd limit to the hard one (20,000 here; it cannot go higher).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDMAX=$(ulimit -n)

# Free loopback ports, taken from the kernel all at once: a python start costs
# a second or more on a loaded machine, and a run needs dozens of ports.
python3 -c '
import socket
ss = [socket.socket() for _ in range(200)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in ss))' > "$T/ports"
port() { # the next free port (a file, so that $(port) in a subshell consumes it)
  local p
  p=$(head -1 "$T/ports"); sed -i 1d "$T/ports"
  [ -n "$p" ] || die "out of ports"
  echo "$p"
}
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
stop() { # stop PID...: TERM, wait up to 10 s, KILL; forgotten by cleanup
  local p q keep
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  # a stopped pid may be reused by then: cleanup must not signal it
  keep=()
  for q in "${PIDS[@]}"; do
    [[ " $* " == *" $q "* ]] || keep+=("$q")
  done
  PIDS=("${keep[@]}")
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
  export DUR RUNS CONNS RATE PINGS WORKERS FDMAX FD_PER_PROC MACHINE_CPU MACHINE_CORES MACHINE_MEM \
    V_EASGATE V_NGINX V_HAPROXY V_OPENSSL V_UV V_GIT V_KERNEL MCONNS MDUR BACKENDS LOADPROCS LOGROUNDS \
    POOL QUICK LOAD_AT_START LOAD_AT_END PROF_DESC
  : > "$D/profile-dso.txt"
  if [ -s "$D/perf.data" ] && command -v perf >/dev/null; then
    perf report -i "$D/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -E '^ +[0-9]' | head -8 | awk '{ printf "%7s  %s\n", $1, $2 }' > "$D/profile-dso.txt" || true
  fi
  CONF="$D/conf" python3 "$SRC/bench/report.py" "$D/results.jsonl" "$D/profile.txt" \
    "$D/profile-dso.txt" > "$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
  log "wrote $OUT"
}

if [ -n "${BENCH_REPORT_ONLY:-}" ]; then
  write_report "$(cd "$BENCH_REPORT_ONLY" && pwd)"
  exit 0
fi

CERTS="$T/certs"
bash "$SRC/certs/mkcerts" "$CERTS" >/dev/null
cat "$CERTS/proxy.crt" "$CERTS/proxy.key" > "$CERTS/proxy.pem" # HAProxy's form

# ---- the Exchange simulator (shared by every run) ----
UP=$(port)
UPPLAIN=$(port)
start exsim "$BUILD/exsim" --listen "127.0.0.1:$UP" --tls-cert "$CERTS/exsim.crt" \
  --tls-key "$CERTS/exsim.key" --plain-listen "127.0.0.1:$UPPLAIN" --workers "$WORKERS" --ping-cap 3600
EXSIM=$LAST
wait_port "$UP"

exsim_held() { # Pings exsim holds now, summed over its worker processes
  kill -USR1 "$EXSIM"  # each worker prints a JSON line of stats; the last one counts
  sleep 0.3
  tr -d '\0' < "$T/exsim.log" | awk '/^\{/ {
      if (match($0, /"pid":[0-9]+/)) pid = substr($0, RSTART + 6, RLENGTH - 6); else next
      if (match($0, /"held":[0-9]+/)) held[pid] = substr($0, RSTART + 7, RLENGTH - 7) }
    END { s = 0; for (p in held) s += held[p]; print s }'
}

# ---- the HTTP backend: Debian's nginx answering every POST with one fixed
# Sync answer, the one exsim gives (WBXML, ~500 bytes), plain and TLS ----
BE_PIDS=()
BP=0 BT=0
start_backend() {
  local d="$T/backend" user=""
  mkdir -p "$d/www"
  curl -sf -o "$d/www/sync.wbxml" -H 'Content-Type: application/vnd.ms-sync.wbxml' \
    -H 'MS-ASProtocolVersion: 16.1' -H 'User-Agent: Apple-iPhone14C3/2006.110' --data-binary 'x' \
    "http://127.0.0.1:$UPPLAIN/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=BE1&DeviceType=iPhone" ||
    die "exsim gave no Sync answer for the backend"
  BP=$(port); BT=$(port)
  [ "$(id -u)" = 0 ] && user="user root;"
  cat > "$d/nginx.conf" <<NGX
# The backend: a real HTTP server answering every request with a fixed
# EAS Sync answer (a static file; POST is served through the 405 error page).
$user
worker_processes $WORKERS;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $FDMAX;
events { worker_connections $((FDMAX - 500)); }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:BE:20m;
  server {
    listen 127.0.0.1:$BP;
    listen 127.0.0.1:$BT ssl;
    ssl_certificate $CERTS/exsim.crt;
    ssl_certificate_key $CERTS/exsim.key;
    root $d/www;
    default_type application/vnd.ms-sync.wbxml;
    etag off;
    location / { error_page 405 =200 /sync.wbxml; try_files /sync.wbxml =404; }
  }
}
NGX
  start backend nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -g 'daemon off;'
  BE_PIDS=("$LAST")
  wait_port "$BP"; wait_port "$BT"
}

# ---- proxies ----
# Every proxy is known by a key (easgate, easgate-log, nginx, haproxy) with
# its port and pids; UPSPEC says which backend it forwards to: exsim (TLS),
# plain or tls (the nginx backend).
declare -A PXPORT PXPIDS
up_port() { case $1 in exsim) echo "$UP" ;; plain) echo "$BP" ;; tls) echo "$BT" ;; esac; }
up_tls() { [ "$1" != plain ]; }

# The policy easgate filters with in every run: each step of the decision
# runs (user-agent allow list, DeviceId block list, device rules, budgets),
# none blocks easload's phones. No Redis: the device-state step finds no
# store, and the budgets count locally.
cat > "$T/policy.yaml" <<'YAML'
unknown_devices: allow
user_agents:
  allow: ["Apple-iPhone*", "Apple-iPad*", "Outlook-*", "Android-*", "TbSync*"]
  block: ["BadMailApp*"]
devices:
  block: ["BADDEVICE0001", "BADDEVICE0002"]
device_rules:
  - match: { device_type: "WindowsMail*" }
    action: block
  - match: { device_os: "Android 9*" }
    action: quarantine
# Budgets on (every request counted, as with the defaults) with limits no
# run reaches: the defaults would throttle easload's phones, which send far
# more than any real one (bench/budget.sh measures what budgets cost).
abuse:
  budgets:
    device: { per_minute: 1000000, burst: 10000000 }
    user: { per_minute: 1000000, burst: 10000000 }
    client: { per_minute: 1000000, burst: 10000000 }
YAML

# easgate's handshake, header and upstream_connect timeouts are set to nginx's
# defaults (nginx 1.22 times the TLS handshake with client_header_timeout;
# that and proxy_connect_timeout are 60 s) so the proxies are configured
# alike under the held-Ping ramp on a busy box.
start_easgate() { # start_easgate KEY UPSPEC NPROC WORKERS_EACH [ACCESS_LOG]
  local key=$1 ups=$2 nproc=$3 w=$4 alog=${5:-off} i adm url ca="" pids=()
  local pport; pport=$(port)
  if up_tls "$ups"; then
    url="https://localhost:$(up_port "$ups")"; ca=", ca: $CERTS/ca.crt"
  else
    url="http://127.0.0.1:$(up_port "$ups")"
  fi
  for i in $(seq "$nproc"); do
    # metrics are counted in every process; the first serves /metrics
    adm=off; [ "$i" = 1 ] && adm="127.0.0.1:$(port)"
    cat > "$T/$key$i.yaml" <<YAML
proxy:
  workers: $w
  admin_listen: $adm
  instances:
    - name: bench
      listen: 127.0.0.1:$pport
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: $url$ca, pool_size: $POOL }
  timeouts: { drain_grace: 1s, handshake: 60s, header: 60s, upstream_connect: 60s }
policy: $T/policy.yaml
log: { access: "$alog", level: warn }
YAML
    start "$key$i" "$BUILD/easgate" proxy -c "$T/$key$i.yaml"
    pids+=("$LAST")
    wait_port "$pport"
  done
  PXPORT[$key]=$pport; PXPIDS[$key]="${pids[*]}"
}

start_nginx() { # start_nginx KEY UPSPEC WORKERS
  local key=$1 ups=$2 w=$3 d="$T/$1" user="" scheme=http pport
  pport=$(port)
  mkdir -p "$d"
  [ "$(id -u)" = 0 ] && user="user root;"
  up_tls "$ups" && scheme=https
  cat > "$d/nginx.conf" <<NGX
# A plain reverse proxy to the same backend: what nginx does for EAS
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
  upstream be { server 127.0.0.1:$(up_port "$ups"); keepalive $POOL; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$pport ssl;
    ssl_certificate $CERTS/proxy.crt;
    ssl_certificate_key $CERTS/proxy.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:20m;
    location / {
      proxy_pass $scheme://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:$(up_port "$ups");
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
  start "$key" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -g 'daemon off;'
  PXPORT[$key]=$pport; PXPIDS[$key]=$LAST
  wait_port "$pport"
}

start_haproxy() { # start_haproxy KEY UPSPEC THREADS
  local key=$1 ups=$2 w=$3 d="$T/$1" ssl="" pport
  pport=$(port)
  mkdir -p "$d"
  up_tls "$ups" && ssl="ssl verify required ca-file $CERTS/ca.crt sni str(localhost) verifyhost localhost"
  # maxconn: two fds per proxied connection within the process's fd limit
  cat > "$d/haproxy.cfg" <<HAP
# A plain reverse proxy to the same backend, as nginx: HTTP mode, keep-alive
# both ways, idle upstream connections reused by any request, no logging.
global
  nbthread $w
  maxconn $(( (FDMAX - 1000) / 2 ))
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 60s
  timeout client 3700s
  timeout server 3700s
  timeout http-request 60s
  timeout http-keep-alive 75s
frontend fe
  bind 127.0.0.1:$pport ssl crt $CERTS/proxy.pem ssl-min-ver TLSv1.2
  default_backend be
backend be
  http-request set-header Host localhost:$(up_port "$ups")
  server s1 127.0.0.1:$(up_port "$ups") $ssl pool-max-conn $((POOL * w))
HAP
  start "$key" haproxy -db -f "$d/haproxy.cfg"
  PXPORT[$key]=$pport; PXPIDS[$key]=$LAST
  wait_port "$pport"
}

start_proxy() { # start_proxy KEY UPSPEC [hold]: the held-Ping layout with hold
  local key=$1 ups=$2
  case $key in
  easgate*)
    local alog=off
    [ "$key" = easgate-log ] && alog="$T/access.log"
    if [ "${3:-}" = hold ]; then
      # two fds per held Ping (phone side, Exchange side): spread over
      # processes on the same port (SO_REUSEPORT), $WORKERS loops in all
      local n=$(( (2 * HOLD_N + FD_PER_PROC - 1) / FD_PER_PROC ))
      [ "$n" -lt 1 ] && n=1
      local w=$(( WORKERS / n )); [ "$w" -lt 1 ] && w=1
      start_easgate "$key" "$ups" "$n" "$w" "$alog"
    else
      start_easgate "$key" "$ups" 1 "$WORKERS" "$alog"
    fi ;;
  nginx) start_nginx "$key" "$ups" "$WORKERS" ;;
  haproxy) start_haproxy "$key" "$ups" "$WORKERS" ;;
  esac
  sleep 0.5
}
# shellcheck disable=SC2086
stop_proxy() { stop ${PXPIDS[$1]}; unset "PXPIDS[$1]" "PXPORT[$1]"; }

RES="$T/results.jsonl"
: > "$RES"

# merge.py FILES... -- TAG KEY ROUND PROXY_TICKS BACKEND_TICKS MS HZ UPSPEC
# CONNS RESULTS: the JSON reports of several easload processes run side by
# side, as one line appended to RESULTS (sums; percentiles from the merged
# latency histograms, computed as easload's hist_percentile does); prints a
# summary. One python start per run: each costs a second on a busy machine.
cat > "$T/merge.py" <<'PY'
import json, sys
at = sys.argv.index("--")
ds = [json.load(open(f)) for f in sys.argv[1:at]]
m = {k: sum(d[k] for d in ds) for k in ("ok", "errors", "rps", "connects", "handshakes", "resumed",
                                        "held_max", "hold_answered", "cpu_s")}
m["seconds"] = max(d["seconds"] for d in ds)
m["err"] = {k: sum(d["err"].get(k, 0) for d in ds) for k in ds[0]["err"]}
m["procs"] = len(ds)
b = {}
for d in ds:
    for top, n in d.get("hist", []):
        b[top] = b.get(top, 0) + n
count = sum(b.values())
mx = max(d["max_us"] for d in ds)
mn = min((d["min_us"] for d in ds if d.get("hist")), default=0)
def pct(p):
    if not count:
        return 0
    rank = max(1, int(p / 100.0 * count + 0.999999))
    seen = 0
    for top in sorted(b):
        seen += b[top]
        if seen >= rank:
            return max(min(top, mx), mn)
    return mx
for p, k in ((50, "p50_us"), (90, "p90_us"), (99, "p99_us"), (99.9, "p999_us")):
    m[k] = pct(p)
m["max_us"] = mx
m["mean_us"] = sum(d["mean_us"] * d["ok"] for d in ds) / max(1, sum(d["ok"] for d in ds))
# with the run's context: what ran, and the CPU the proxy and backend used
tag, proxy, rnd, pc, ec, ms, hz, ups, conns, res = sys.argv[at + 1:]
wall = int(ms) / 1000.0
pcs = int(pc) / int(hz)
m.update(tag=tag, proxy=proxy, round=int(rnd), upstream=ups, conns=int(conns),
         proxy_cpu=pcs / wall * 100, exsim_cpu=int(ec) / int(hz) / wall * 100,
         load_cpu=m["cpu_s"] / wall * 100, cpu_us_req=pcs * 1e6 / m["ok"] if m["ok"] else None,
         load1=float(open("/proc/loadavg").read().split()[0]))
with open(res, "a") as f:
    f.write(json.dumps(m) + "\n")
print("%.0f req/s, p99 %.2f ms, %d handshakes, %d errors" % (m["rps"], m["p99_us"] / 1e3, m["handshakes"], m["errors"]))
PY

# easload_run TAG KEY ROUND UPSPEC CONNS NPROC ARGS...: one measured load
# run through proxy KEY (or "direct" to exsim), CONNS keep-alive connections
# spread over NPROC easload processes (distinct devices), with the CPU used
# meanwhile by the proxy, the backend and easload.
easload_run() {
  local tag=$1 key=$2 round=$3 ups=$4 conns=$5 np=$6; shift 6
  local c0 e0 t0 c1 e1 t1 i n off lp=() files=() url bpids
  if [ "$key" = direct ]; then url="https://localhost:$UP"; else url="https://localhost:${PXPORT[$key]}"; fi
  case $ups in exsim) bpids=$EXSIM ;; *) bpids="${BE_PIDS[*]}" ;; esac
  [ "$np" -gt "$conns" ] && np=$conns
  # shellcheck disable=SC2086
  c0=$(cpu_ticks ${PXPIDS[$key]:-}); e0=$(cpu_ticks $bpids); t0=$(date +%s%N)
  for i in $(seq 0 $((np - 1))); do
    n=$(( conns / np + (i < conns % np ? 1 : 0) )); off=$((i * 1000))
    "$BUILD/easload" --url "$url" --cafile "$CERTS/ca.crt" --quiet --connections "$n" \
      --id-offset "$off" --json "$T/run$i.json" "$@" &
    lp+=("$!"); files+=("$T/run$i.json")
  done
  for i in "${lp[@]}"; do wait "$i" || log "easload reported errors ($tag $key c$conns $ups round $round)"; done
  # shellcheck disable=SC2086
  t1=$(date +%s%N); c1=$(cpu_ticks ${PXPIDS[$key]:-}); e1=$(cpu_ticks $bpids)
  python3 "$T/merge.py" "${files[@]}" -- "$tag" "$key" "$round" "$(( (c1 - c0) ))" "$(( (e1 - e0) ))" \
    "$(( (t1 - t0) / 1000000 ))" "$HZ" "$ups" "$conns" "$RES" > "$T/run.txt"
  log "$tag $key c$conns $ups round $round: $(cat "$T/run.txt")"
}

# hold_run KEY ROUND: RSS of the proxy idle, warmed up, and with $HOLD_N held
# Pings (TLS on both legs: exsim holds them upstream).
hold_run() {
  local key=$1 round=$2 idle base held rss i pids=() n0
  start_proxy "$key" exsim hold
  sleep 1
  # shellcheck disable=SC2086
  idle=$(rss_kb ${PXPIDS[$key]})
  # warm up (TLS contexts, pools, first allocations) before the baseline
  "$BUILD/easload" --url "https://localhost:${PXPORT[$key]}" --quiet --connections 4 --mix sync \
    --requests 400 --duration 20 >/dev/null || true
  sleep 1
  # shellcheck disable=SC2086
  base=$(rss_kb ${PXPIDS[$key]})
  n0=$(exsim_held)
  # one easload process per $FD_PER_PROC Pings; distinct devices
  local per_proc=$FD_PER_PROC left=$HOLD_N off=0 n
  while [ "$left" -gt 0 ]; do
    n=$(( left < per_proc ? left : per_proc ))
    start "hold$off" "$BUILD/easload" --url "https://localhost:${PXPORT[$key]}" --quiet --connections 0 \
      --hold-pings "$n" --hold-heartbeat 3540 --hold-rate 1000 --id-offset "$off" --devices "$n" \
      --duration 600 --json "$T/hold-$key-$HOLD_N-$round-$off.json"
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
    [ "$held" -ge "$HOLD_N" ] && break
    if [ "$held" != "$last" ]; then last=$held; t_last=$(date +%s); fi
    [ $(( $(date +%s) - t_last )) -gt 20 ] && break
    sleep 2
  done
  sleep 2
  # shellcheck disable=SC2086
  rss=$(rss_kb ${PXPIDS[$key]})
  held=$(( $(exsim_held) - n0 ))
  log "hold $key round $round: $held of $HOLD_N Pings held, RSS $idle / $base -> $rss KiB"
  # shellcheck disable=SC2086
  local procs; procs=$(tree ${PXPIDS[$key]} | wc -l)
  for i in "${pids[@]}"; do kill -INT "$i" 2>/dev/null || true; done
  stop "${pids[@]}"
  local errs=0 f e
  for f in "$T"/hold-"$key"-"$HOLD_N"-"$round"-*.json; do
    # a missing or cut file (an easload that was killed) is said, not fatal
    if ! e=$(grep -o '"errors":[0-9]*' "$f" 2>/dev/null | head -1 | cut -d: -f2) || [ -z "$e" ]; then
      log "hold $key round $round: no readable results in $f"
      continue
    fi
    errs=$((errs + e))
  done
  [ "$errs" = 0 ] || log "hold $key round $round: easload counted $errs errors (see $T/hold-$key-$HOLD_N-$round-*.json)"
  echo "{\"tag\":\"hold\",\"proxy\":\"$key\",\"round\":$round,\"pings\":$HOLD_N,\"held\":$held,\"idle_kb\":$idle,\"base_kb\":$base,\"rss_kb\":$rss,\"procs\":$procs,\"load_errors\":$errs}" >> "$RES"
  stop_proxy "$key"
  sleep 1
}

keep_conf() { # the generated configurations, as they are now, for the report
  local k
  for k in easgate1.yaml nginx/nginx.conf haproxy/haproxy.cfg backend/nginx.conf policy.yaml; do
    if [ -r "$T/$k" ]; then mkdir -p "$T/conf/$(dirname "$k")"; cp "$T/$k" "$T/conf/$k"; fi
  done
}

# ---- the runs ----
avail=""
for p in $PROXIES; do
  case $p in
  easgate) [ "$HAVE_EASGATE" = 1 ] && avail="$avail easgate" || log "no $BUILD/easgate: peers only" ;;
  nginx) [ "$HAVE_NGINX" = 1 ] && avail="$avail nginx" || log "no nginx installed: left out" ;;
  haproxy) [ "$HAVE_HAPROXY" = 1 ] && avail="$avail haproxy" || log "no haproxy installed: left out" ;;
  esac
done
[ -n "$avail" ] || die "no proxy can run"
[ "$HAVE_NGINX" = 1 ] || BACKENDS="" # the HTTP backend is nginx

# 1. keep-alive Sync POSTs through the HTTP backend, per connection count.
# All proxies run at once (idle but one), so the rounds interleave run by run.
if [ -n "$BACKENDS" ] && [[ " $SECTIONS " == *" matrix "* ]]; then
  start_backend
  for ups in $BACKENDS; do
    keys=$avail
    [[ " $avail " == *" easgate "* ]] && [ "$LOGROUNDS" -gt 0 ] && keys="$keys easgate-log"
    for k in $keys; do start_proxy "$k" "$ups"; done
    keep_conf # the report shows the configurations of the last backend's runs
    for r in $(seq "$RUNS"); do
      for c in $MCONNS; do
        for k in $keys; do
          [ "$k" = easgate-log ] && [ "$r" -gt "$LOGROUNDS" ] && continue
          easload_run mx "$k" "$r" "$ups" "$c" "$LOADPROCS" --mix sync --duration "$MDUR"
          [ "$k" = easgate-log ] && : > "$T/access.log" # appended to: kept small
        done
      done
    done
    for k in $keys; do stop_proxy "$k"; done
  done
fi

# 2. against exsim: small POSTs, fixed rate, handshakes (with the direct
# load first, for scale: the ceiling no proxy can beat here)
exsim_run() { # exsim_run TAG KEY ROUND: one of section 2's runs, if chosen
  local tag=$1 key=$2 r=$3 args=()
  [[ " $EXSIM_RUNS " == *" $tag "* ]] || return 0
  case $tag in
  rate) args=(--rate "$RATE") ;;
  hs) args=(--new-conn --resume off) ;;
  hsr) args=(--new-conn --resume on) ;;
  esac
  easload_run "$tag" "$key" "$r" exsim "$CONNS" 1 --mix sync --duration "$DUR" "${args[@]}"
}
if [[ " $SECTIONS " == *" exsim "* ]]; then
  for r in $(seq "$RUNS"); do exsim_run post direct "$r"; done
  for r in $(seq "$RUNS"); do
    for p in $avail; do
      start_proxy "$p" exsim
      for t in post rate hs hsr; do exsim_run "$t" "$p" "$r"; done
      stop_proxy "$p"
    done
  done
fi

# 3. memory per held Ping
for HOLD_N in $PINGS; do
  [ "$HOLD_N" -gt 0 ] && [[ " $SECTIONS " == *" hold "* ]] || continue
  for r in $(seq "$HOLD_RUNS"); do
    for p in $avail; do hold_run "$p" "$r"; done
  done
done

# ---- profile of easgate under the c256 load through the TLS backend ----
PROF="$T/profile.txt"
PROF_C=256 PROF_UP=tls
[ -n "$BACKENDS" ] || PROF_UP=exsim
: > "$PROF"
if [ "$PROFILE" = 1 ] && [ "$HAVE_EASGATE" = 1 ] && command -v perf >/dev/null; then
  start_proxy easgate "$PROF_UP"
  for i in 0 1; do
    "$BUILD/easload" --url "https://localhost:${PXPORT[easgate]}" --quiet --connections $((PROF_C / 2)) \
      --id-offset $((i * 1000)) --mix sync --duration "$((DUR + 4))" >/dev/null &
    eval "LOADPID$i=\$!"
  done
  sleep 2
  first=${PXPIDS[easgate]%% *}
  if timeout $((DUR + 30)) perf record -q -F 999 -g -o "$T/perf.data" -p "$first" -- sleep "$DUR" \
    >/dev/null 2>&1; then
    perf report -i "$T/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 \
      2>/dev/null | grep -E '^ +[0-9]' | head -15 |
      awk '{ printf "%7s  %-4s %s\n", $1, $2, $3 }' > "$PROF" || true
  else
    log "perf record failed (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))"
  fi
  # shellcheck disable=SC2154
  wait "$LOADPID0" "$LOADPID1" 2>/dev/null || true
  stop_proxy easgate
fi
[ "${#BE_PIDS[@]}" -gt 0 ] && stop "${BE_PIDS[@]}"

# ---- RESULTS.md ----
MACHINE_CPU=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
MACHINE_CORES=$(nproc)
MACHINE_MEM=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
V_EASGATE=$([ "$HAVE_EASGATE" = 1 ] && "$BUILD/easgate" version || echo "not built")
V_NGINX=$([ "$HAVE_NGINX" = 1 ] && nginx -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
V_HAPROXY=$([ "$HAVE_HAPROXY" = 1 ] && haproxy -v 2>&1 | awk 'NR==1{print $3}' || echo "not installed")
V_OPENSSL=$(openssl version)
V_UV=$(pkg-config --modversion libuv 2>/dev/null || echo "?")
V_GIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo "?")
V_KERNEL=$(uname -r)
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
PROF_DESC="c$PROF_C, $PROF_UP backend"
declare -p DUR RUNS CONNS RATE PINGS WORKERS FDMAX FD_PER_PROC MACHINE_CPU MACHINE_CORES MACHINE_MEM \
  V_EASGATE V_NGINX V_HAPROXY V_OPENSSL V_UV V_GIT V_KERNEL MCONNS MDUR BACKENDS LOADPROCS LOGROUNDS \
  POOL QUICK HOLD_RUNS LOAD_AT_START LOAD_AT_END PROF_DESC | sed 's/^declare -[a-z-]* //' > "$T/env"
[ -d "$T/conf" ] || keep_conf
write_report "$T"
