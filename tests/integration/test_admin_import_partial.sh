#!/usr/bin/env bash
# `easgate admin devices import` when the core fails half way (docs/core.md,
# "Import and export"): the import goes in batches, each one transaction on
# the core; when one is refused (HTTP 503) or the core goes away, the client
# stops there and says which rows landed and where it stopped, by FILE:LINE.
# A scripted API (Python, on loopback) plays the core so that the failure
# comes at a chosen batch: it takes every dry-run batch, stores real batches
# 1 and 2, refuses or drops batch 3 and counts what it stored (or, playing a
# core from before "validate", refuses that field and stores every batch).
# Also: a record over 64 KiB and a 100,000-row file (dry run) against the
# real core.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }
EG="$BUILD/easgate"
cd "$TMP"

cat >fakecore.py <<'PY'
import http.server, json, sys
port, mode = int(sys.argv[1]), sys.argv[2]
stored = []
real = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self, status, obj):
        b = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_POST(self):
        global real
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = body["devices"]
        if mode == "old" and "validate" in body:
            return self.answer(400, {"error": "unknown field 'validate' (known: dry_run, create_users, devices)"})
        if body.get("dry_run"):
            return self.answer(200, {"created": len(rows), "updated": 0, "unchanged": 0, "rows": []})
        real += 1
        if real == 3 and mode != "old":
            if mode == "drop":
                self.close_connection = True
                self.connection.close()
                with open("stored.txt", "w") as f: f.write("\n".join(stored) + "\n")
                sys.exit(0)
            return self.answer(503, {"error": "the registry is busy"})
        stored.extend(r["device_id"] for r in rows)
        with open("stored.txt", "w") as f: f.write("\n".join(stored) + "\n")
        self.answer(200, {"created": len(rows), "updated": 0, "unchanged": 0, "rows": []})
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY

{ echo 'device_id,user,type'; for i in $(seq 1 50); do printf 'P%03d,u%d@example.com,iPhone\n' "$i" "$i"; done; } >fifty.csv

for mode in refuse drop; do
  port=$(eg_port)
  rm -f stored.txt
  eg_start "fake_$mode" python3 fakecore.py "$port" "$mode"
  eval "fake=\$fake_${mode}_pid"
  eg_wait_port "$port"
  rc=0
  EASGATE_URL="http://127.0.0.1:$port" EASGATE_TOKEN=egt_fake \
    timeout 30 "$EG" admin devices import fifty.csv --batch 10 >out 2>err || rc=$?
  kill "$fake" 2>/dev/null || true
  wait "$fake" 2>/dev/null || true
  [ $rc -eq 1 ] || eg_fail "$mode: exit $rc, $(cat out err)"
  # Batch 3 is lines 22-31 (line 1 is the header).
  if [ $mode = refuse ]; then
    grep -q "^fifty.csv:22: lines 22-31: the registry is busy (HTTP 503)" err ||
      eg_fail "$mode: the refused batch is not named by its lines: $(cat err)"
  fi
  grep -q "fifty.csv: stopped: the batch above was not stored, nor anything after it; 20 rows before it were (20 created, 0 updated, 0 unchanged)" err ||
    eg_fail "$mode: no account of what landed: $(cat err)"
  [ "$(wc -l <stored.txt)" -eq 20 ] && [ "$(head -1 stored.txt)" = P001 ] && [ "$(tail -1 stored.txt)" = P020 ] ||
    eg_fail "$mode: the fake core stored $(wc -l <stored.txt) rows"
  grep -q "P021" stored.txt && eg_fail "$mode: a row after the failure was sent"
  eg_pass "import, core $mode at batch 3: stops there, says 20 rows landed and where it stopped"
done

# A core from before "validate" refuses the field: the check pass falls
# back to full dry runs and the import goes through.
port=$(eg_port)
rm -f stored.txt
eg_start fake_old python3 fakecore.py "$port" old
eg_wait_port "$port"
rc=0
EASGATE_URL="http://127.0.0.1:$port" EASGATE_TOKEN=egt_fake \
  timeout 30 "$EG" admin devices import fifty.csv --batch 10 >out 2>err || rc=$?
kill "$fake_old_pid" 2>/dev/null || true
wait "$fake_old_pid" 2>/dev/null || true
[ $rc -eq 0 ] && grep -q "fifty.csv: 50 rows: 50 created" out && [ "$(wc -l <stored.txt)" -eq 50 ] ||
  eg_fail "an older core: exit $rc, $(cat out err)"
eg_pass "a core without \"validate\": the check falls back to dry runs, all 50 rows stored"

# A record longer than 64 KiB: an error at its line, nothing sent (no core
# needed: the client refuses the file before connecting).
{ echo 'device_id,user,note'; echo 'OK1,a@example.com,fine';
  printf 'BIG1,b@example.com,%s\n' "$(head -c 70000 /dev/zero | tr '\0' x)"; } >big.csv
rc=0; EASGATE_URL="http://127.0.0.1:1" EASGATE_TOKEN=egt_fake "$EG" admin devices import big.csv 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "^big.csv:3: a record longer than 65536 bytes" err && grep -q "nothing was sent" err ||
  eg_fail "a 70 KB record: exit $rc, $(cat err)"
eg_pass "a record over 64 KiB is an error at its line; nothing is sent"

# 100,000 rows against the real core: a dry run goes through in batches and
# stores nothing; one bad row near the end stops everything before sending.
cport=$(eg_port)
cat >easgate.yaml <<EOF
log: { error: "-", level: warn }
core:
  database: registry.db
  listen: 127.0.0.1:$cport
EOF
echo 'correct horse battery' | "$EG" core init-admin -c easgate.yaml --user root >/dev/null
tok=$("$EG" core token -c easgate.yaml --user root 2>/dev/null)
eg_stack core "$TMP/easgate.yaml"
export EASGATE_URL="http://127.0.0.1:$cport" EASGATE_TOKEN=$tok
# 100,000 rows; 20,000 in a sanitized build, where the size costs a minute
# and its batches already repeat many times (the plain build runs all).
N=100000
grep -q '^EASGATE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && N=20000
python3 -c '
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("device_id,user,type\n")
for i in range(n): w("H%06d,user%d@example.com,iPhone\n" % (i, i % 5000))' "$N" >huge.csv
t0=$(date +%s)
out=$(timeout 300 "$EG" admin devices import huge.csv --create-users --dry-run) || eg_fail "huge dry run failed: $out"
grep -q "^huge.csv: $N rows: $N would be created, 0 updated, 0 unchanged (dry run: nothing was stored)" <<<"$out" ||
  eg_fail "huge dry run: $(tail -3 <<<"$out")"
[ "$("$EG" admin devices export --format jsonl 2>/dev/null | wc -l)" -eq 0 ] || eg_fail "a dry run stored devices"
echo "  $N-row dry run in $(($(date +%s) - t0)) s"
sed -i "$((N - 10))s/,iPhone\$/,iPhone,extra/" huge.csv
rc=0; timeout 120 "$EG" admin devices import huge.csv --create-users 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "^huge.csv:$((N - 10)): " err && grep -q "nothing was sent" err ||
  eg_fail "a bad row at line $((N - 10)): exit $rc, $(tail -3 err)"
[ "$("$EG" admin devices export --format jsonl 2>/dev/null | wc -l)" -eq 0 ] || eg_fail "a refused file stored devices"
eg_pass "$N rows: the dry run goes through and stores nothing; one bad row stops all before sending"
