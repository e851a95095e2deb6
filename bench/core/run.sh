#!/usr/bin/env bash
# The management core at scale (issue 21): a registry of a million devices,
# the admin API over HTTPS, loads from wrk (Lua scripts in this directory)
# and bench/corebench side by side. Every scenario runs ROUNDS times (3 by
# default); each round is one JSON line in OUT/results.jsonl with the 1-minute
# load average before and after it, and summary.py prints the medians.
#
#   bench/core/run.sh BUILD SEED_DB OUT [SCENARIO ...]
#
#   BUILD    the build directory (easgate, corebench)
#   SEED_DB  a registry of the fleet of bench/coreseed/fleet.h (copied, never
#            changed): build/coreseed's file imported with `easgate admin
#            devices import --create-users`, then one pass of check-ins
#            (docs/core.md, "Scale")
#   OUT      where the work copy, logs and results go
#
# Scenarios (all when none is named): checkin16 checkin64 corebench16
# corebench64 lists search mixed statechange resync. Environment: ROUNDS (3),
# SECONDS_CHECKIN (30), SECONDS_LIST (10), DEVICES (1000000), USERS (100000).
# Needs redis-server, wrk, python3, openssl, sqlite3.
set -euo pipefail
BUILD=$(cd "${1:?build dir}" && pwd)
SEED=$(realpath "${2:?seed registry}")
OUT=$(mkdir -p "${3:?output dir}" && cd "$3" && pwd)
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-3}
SEC_CI=${SECONDS_CHECKIN:-30}
SEC_LIST=${SECONDS_LIST:-10}
DEVICES=${DEVICES:-1000000}
USERS=${USERS:-100000}
SCEN=("$@")
[ ${#SCEN[@]} -gt 0 ] || SCEN=(checkin16 checkin64 corebench16 corebench64 lists search mixed statechange resync)
for t in redis-server wrk python3 openssl sqlite3; do
  command -v $t >/dev/null || { echo "bench/core: needs $t" >&2; exit 2; }
done

W=$OUT/work
rm -rf "$W"
mkdir -p "$W"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
wait_port() {
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench/core: nothing listens on $1" >&2
  exit 1
}

echo "bench/core: copying $SEED" >&2
cp "$SEED" "$W/registry.db"
PAGE=$(sqlite3 "file:$W/registry.db?mode=ro" 'PRAGMA page_size')
# The copy cached again page by page. A file written or read in sequence
# (this copy) sits in the page cache in large folios (Linux 6.16+ on ext4),
# and the kernel's write_bytes then charges a whole folio, up to megabytes,
# for each 4 KiB page SQLite writes into it: ten times and more what was
# written (docs/core.md, "Scale"). Dropped and read back in random order,
# it is cached in single pages, as a registry read by its B-trees is.
python3 - "$W/registry.db" "$PAGE" <<'PY'
import os, random, sys
fd, ps = os.open(sys.argv[1], os.O_RDONLY), int(sys.argv[2])
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
pages = list(range(os.fstat(fd).st_size // ps))
random.shuffle(pages)
for p in pages:
    os.pread(fd, ps, p * ps)
PY
bash "$SRC/certs/mkcerts" "$W/certs" >/dev/null
cp "$HERE/policy.yaml" "$W/policy.yaml"
RPORT=$(port)
CPORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$W" \
  --daemonize no >"$W/redis.log" 2>&1 &
PIDS+=($!)
REDIS=$!
redis_ticks() { awk '{print $14 + $15}' /proc/$REDIS/stat; } # user + system, clock ticks
wait_port "$RPORT"
cat >"$W/easgate.yaml" <<EOF
policy: policy.yaml
log: { error: core.log, level: info }
redis:
  url: redis://127.0.0.1:$RPORT/0
core:
  database: registry.db
  tick: 1s
  # wrk's 64 connections come from one address (the default allows 32)
  api_max_conns_per_client: 1000
  listen: 127.0.0.1:$CPORT
  tls: { cert: certs/proxy.crt, key: certs/proxy.key }
EOF
C=(-c "$W/easgate.yaml")
EG="$BUILD/easgate"
echo 'bench core password 1' | "$EG" core init-admin "${C[@]}" --user root >/dev/null
echo 'bench viewer password 1' | "$EG" core init-admin "${C[@]}" --user vera --role viewer >/dev/null
DEVTOK=$("$EG" core token "${C[@]}" --user root --role device --name bench)
VIEWTOK=$("$EG" core token "${C[@]}" --user vera --role viewer --name bench)

echo "bench/core: starting the core on $DEVICES devices" >&2
t0=$(date +%s.%N)
"$EG" core "${C[@]}" >>"$W/core.stderr" 2>&1 &
CORE=$!
PIDS+=($CORE)
for _ in $(seq 6000); do
  grep -q "admin API on" "$W/core.log" "$W/core.stderr" 2>/dev/null && break
  kill -0 $CORE 2>/dev/null || { cat "$W/core.stderr" "$W/core.log" >&2; exit 1; }
  sleep 0.1
done
wait_port "$CPORT"
start_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
URL=https://127.0.0.1:$CPORT
RES=$OUT/results.jsonl

io_w() { awk '/^write_bytes/ {print $2}' /proc/$CORE/io; }
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/$CORE/status; }
hwm_kb() { awk '/^VmHWM/ {print $2}' /proc/$CORE/status; }
logfiles() { local f; for f in "$W/core.log" "$W/core.stderr"; do [ -f "$f" ] && echo "$f"; done; }
logsz() { logfiles | xargs -r cat | wc -c; }
loglines() { logfiles | xargs -r cat | wc -l; }
walsz() { stat -c %s "$W/registry.db-wal" 2>/dev/null || echo 0; }
changes() { sqlite3 "file:$W/registry.db?mode=ro" "SELECT value FROM meta WHERE key='state_version'"; }

# record SCENARIO ROUND JSON_FROM_WRK BEFORE_IO BEFORE_LOG BEFORE_LINES BEFORE_VER LA0 [EXTRA_JSON]
# (and the core's CPU seconds, checkpoints, writer groups and jobs,
# checkpointed pages and WAL frames before, in $cpu0 $ck0 $gr0 $jb0 $cp0 $wf0).
# registry_bytes is what SQLite wrote to the registry's files: each WAL frame
# (a page and its 24-byte header) and each page a checkpoint copied.
record() {
  local s=$1 r=$2 j=$3 io0=$4 lg0=$5 ln0=$6 v0=$7 la0=$8 extra=${9:-}
  local io1 lg1 ln1 v1 cpu1 w
  cpu1=$(cpu_s)
  w=$(python3 -c "import json; print(json.dumps({'checkpoints': $(metric easgate_core_checkpoints_total) - $ck0, 'writer_groups': $(metric easgate_core_writer_groups_total) - $gr0, 'writer_jobs': $(metric easgate_core_writer_jobs_total) - $jb0, 'wal_frames': $(metric easgate_core_wal_frames_total) - $wf0, 'checkpoint_pages': $(metric easgate_core_checkpoint_pages_total) - $cp0, 'page_size': $PAGE}))")
  io1=$(io_w)
  lg1=$(logsz)
  ln1=$(loglines)
  v1=$(changes)
  python3 - "$s" "$r" "$j" "$((io1 - io0))" "$((lg1 - lg0))" "$((ln1 - ln0))" "$((v1 - v0))" \
    "$la0" "$(loadavg)" "$(walsz)" "$(rss_kb)" "$(python3 -c "print(round($cpu1 - $cpu0, 2))")" \
    "$w" "$extra" >>"$RES" <<'PY'
import json, sys
s, r, j, io, lg, ln, ver, la0, la1, wal, rss, cpu, w, extra = sys.argv[1:]
d = json.loads(j) if j.strip() else {}
d.update(scenario=s, round=int(r), disk_bytes=int(io), log_bytes=int(lg), log_lines=int(ln),
         versions=int(ver), load0=float(la0), load1=float(la1), wal_bytes=int(wal),
         rss_kb=int(rss), core_cpu_s=float(cpu), **json.loads(w))
if extra:
    d.update(json.loads(extra))
n = d.get("requests") or 0
if n:
    d["disk_per_req"] = round(int(io) / n, 1)
    d["log_per_req"] = round(int(lg) / n, 1)
d["registry_bytes"] = d["wal_frames"] * (d["page_size"] + 24) + d["checkpoint_pages"] * d["page_size"]
if n:
    d["registry_per_req"] = round(d["registry_bytes"] / n, 1)
if int(ver):
    d["disk_per_change"] = round(int(io) / int(ver), 1)
    d["registry_per_change"] = round(d["registry_bytes"] / int(ver), 1)
print(json.dumps(d))
PY
}

# CPU seconds the core used (user + system): the machine is shared, so a
# rate is read beside the CPU it cost and the load average.
TICK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' /proc/$CORE/stat; }
# A counter of the core's /metrics (0 when it has none).
metric() { curl -sk "$URL/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'; }
snap() {
  echo "$(io_w) $(logsz) $(loglines) $(changes) $(loadavg) $(cpu_s)" \
    "$(metric easgate_core_checkpoints_total) $(metric easgate_core_writer_groups_total)" \
    "$(metric easgate_core_writer_jobs_total) $(metric easgate_core_checkpoint_pages_total)" \
    "$(metric easgate_core_wal_frames_total)"
}

wrk_checkin() { # CONNS SECONDS FACTS
  EG_TOKEN=$DEVTOK EG_DEVICES=$DEVICES EG_FACTS=$3 \
    wrk -t2 -c"$1" -d"$2"s -s "$HERE/checkin.lua" "$URL" | tail -n 1
}

wrk_list() { # QUERY CONNS SECONDS
  EG_TOKEN=$VIEWTOK EG_DEVICES=$DEVICES EG_USERS=$USERS EG_QUERY=$1 \
    wrk -t1 -c"$2" -d"$3"s -s "$HERE/list.lua" "$URL" | tail -n 1
}

corebench_checkin() { # CONNS SECONDS
  local line
  line=$("$BUILD/corebench" --addr "127.0.0.1:$CPORT" --tls --cacert "$W/certs/ca.crt" \
    --token "$DEVTOK" --conns "$1" --seconds "$2" checkin BENCH "$DEVICES" || true)
  python3 - "$line" <<'PY'
import json, re, sys
l = sys.argv[1]
m = re.search(r"(\d+) ok, (\d+) not 200.*?(\d+) connection errors in ([\d.]+) s: (\d+) req/s.*?p50 ([\d.]+) ms p99 ([\d.]+) ms max ([\d.]+)", l)
if not m:
    print(json.dumps({"raw": l}))
else:
    ok, bad, err, sec, rate, p50, p99, mx = m.groups()
    print(json.dumps({"requests": int(ok) + int(bad), "seconds": float(sec), "rate": float(rate),
                      "p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(mx),
                      "non2xx": int(bad), "errors": int(err)}))
PY
}

LISTS=(
  "user=u{u}@example.com"
  "state=block"
  "state=quarantine"
  "state=wipe&type=iPhone"
  "type=BlackBerry"
  "type=iPhone&state=quarantine"
  "managed=no"
  "managed=no&type=iPad"
  "seen_since={now-1d}"
  "seen_since={now-1d}&state=quarantine"
  "seen_before={now-7d}&type=BlackBerry"
  "after={d}"
  "os=Android"
  "os=Other&managed=yes"
  "compliance=failing"
  "compliance=compliant&after={d}"
  "state=allow&type=Android&managed=yes&seen_since={now-7d}"
)

# The console's search box and sorted columns (issue 18), a page of 50 as
# the console asks. A sorted cursor is DEVICEID.KEY (KEY in base64url): the
# deep ones start half-way through their order.
b64u() { printf %s "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
HOUR=$(($(date +%s) / 3600))
SEARCHES=(
  "q=BENCH{d}&limit=50"
  "q=u{u}&limit=50"
  "q=u{u}@example.com&state=allow&limit=50"
  "q=BENCH1&limit=50"
  "q=u1&limit=50"
  "q=iph&limit=50"
  "q=nomatch&limit=50"
  "q=u1&sort=user&order=desc&limit=50"
  "sort=user&limit=50"
  "sort=user&order=desc&after=BENCH500000.$(b64u u50000@example.com)&limit=50"
  "sort=last_seen&order=desc&limit=50"
  "sort=last_seen&after=BENCH500000.$(b64u $HOUR)&limit=50"
  "sort=state&order=desc&limit=50"
  "sort=type&after=BENCH500000.$(b64u iPhone)&limit=50"
  "sort=os&order=desc&limit=50"
  "sort=state&state=wipe&type=iPhone&limit=50"
  "sort=type&state=quarantine&order=desc&limit=50"
)

for s in "${SCEN[@]}"; do
  case $s in
  search)
    for q in "${SEARCHES[@]}"; do
      for r in $(seq "$ROUNDS"); do
        read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
        j=$(wrk_list "$q" 1 "$SEC_LIST")
        record "search:$q" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" '{"tool":"wrk"}'
      done
    done
    ;;
  checkin16 | checkin64)
    c=${s#checkin}
    for r in $(seq "$ROUNDS"); do
      read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
      j=$(wrk_checkin "$c" "$SEC_CI" same)
      record "$s" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" '{"tool":"wrk"}'
    done
    ;;
  corebench16 | corebench64)
    c=${s#corebench}
    for r in $(seq "$ROUNDS"); do
      read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
      j=$(corebench_checkin "$c" "$SEC_CI")
      record "$s" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" '{"tool":"corebench"}'
    done
    ;;
  lists)
    for q in "${LISTS[@]}"; do
      for r in $(seq "$ROUNDS"); do
        read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
        j=$(wrk_list "$q" 1 "$SEC_LIST")
        record "list:$q" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" '{"tool":"wrk"}'
      done
    done
    ;;
  mixed)
    # Check-ins on 16 connections while four viewers repeat the slowest lists.
    for r in $(seq "$ROUNDS"); do
      read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
      vp=()
      for q in "managed=no" "seen_since={now-1d}" "state=wipe&type=iPhone" "managed=no&type=iPad"; do
        wrk_list "$q" 1 "$SEC_CI" >"$W/viewer.$r.${#q}.json" &
        vp+=($!)
      done
      j=$(wrk_checkin 16 "$SEC_CI" same)
      wait "${vp[@]}"
      vj=$(cat "$W"/viewer."$r".*.json | python3 -c 'import json,sys; v=[json.loads(l) for l in sys.stdin if l.strip()]; print(json.dumps({"viewers_rate": round(sum(x["rate"] for x in v),1), "viewers_p99_ms": max(x["p99_ms"] for x in v)}))')
      record "mixed" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" "$vj"
    done
    ;;
  statechange)
    # Every check-in reports no passcode: a compliant device moves into grace.
    for r in $(seq "$ROUNDS"); do
      read -r io lg ln v la cpu0 ck0 gr0 jb0 cp0 wf0 <<<"$(snap)"
      j=$(wrk_checkin 16 "$SEC_CI" nopass)
      record "statechange" "$r" "$j" "$io" "$lg" "$ln" "$v" "$la" '{"tool":"wrk"}'
    done
    ;;
  resync)
    # CPU seconds beside the wall time: on a shared machine the wall time
    # says more about the neighbours than about the resync.
    for r in $(seq "$ROUNDS"); do
      la=$(loadavg)
      rc0=$(redis_ticks)
      /usr/bin/time -o "$W/resync.$r.time" -f '%e %M %U %S' "$EG" core resync "${C[@]}" \
        >"$W/resync.$r.out" 2>"$W/resync.$r.err"
      t=$(tail -n 1 "$W/resync.$r.time")
      python3 - "$r" "$la" "$(loadavg)" "$t" "$(tail -n 1 "$W/resync.$r.out" "$W/resync.$r.err" | tr '\n' ' ')" \
        "$(($(redis_ticks) - rc0))" "$(getconf CLK_TCK)" >>"$RES" <<'PY'
import json, sys
r, la0, la1, t, out, rticks, hz = sys.argv[1:]
sec, rss, usr, sys_ = t.split()[-4:]
print(json.dumps({"scenario": "resync", "round": int(r), "seconds": float(sec),
                  "cli_rss_kb": int(rss), "cli_cpu_s": round(float(usr) + float(sys_), 2),
                  "redis_cpu_s": round(int(rticks) / int(hz), 2),
                  "load0": float(la0), "load1": float(la1), "output": out.strip()}))
PY
    done
    ;;
  *)
    echo "bench/core: unknown scenario $s" >&2
    exit 2
    ;;
  esac
done
python3 - "$start_s" "$(rss_kb)" "$(hwm_kb)" "$(walsz)" "$(stat -c %s "$W/registry.db")" >>"$RES" <<'PY'
import json, sys
st, rss, hwm, wal, db = sys.argv[1:]
print(json.dumps({"scenario": "core", "start_s": float(st), "rss_kb": int(rss), "hwm_kb": int(hwm),
                  "wal_bytes": int(wal), "db_bytes": int(db)}))
PY
python3 "$HERE/summary.py" "$RES"
