#!/usr/bin/env bash
# bench/run.sh end to end, in miniature (1 round, 1 s per run, 200 held
# Pings, no profile): it starts exsim, easgate and nginx, measures, stops
# everything it started, and writes a RESULTS file whose tables are filled
# and whose runs had no errors. Keeps the benchmark script from rotting.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$BUILD/exsim" ] && [ -x "$BUILD/easload" ] || { echo "no exsim/easload"; exit 77; }
[ -x "$BUILD/easgate" ] || { echo "no easgate"; exit 77; }
command -v nginx >/dev/null || { echo "no nginx"; exit 77; }
command -v python3 >/dev/null || exit 77

out="$TMP/RESULTS.md"
TMPDIR="$TMP" BENCH_DURATION=1 BENCH_RUNS=1 BENCH_CONNS=8 BENCH_PINGS=200 BENCH_PROFILE=0 BENCH_OUT="$out" \
  timeout 240 bash "$SRC/bench/run.sh" "$BUILD" > "$TMP/run.log" 2>&1 ||
  eg_fail "run.sh failed: $(tail -20 "$TMP/run.log")"
[ -s "$out" ] || eg_fail "no RESULTS written"
grep -q 'reported errors' "$TMP/run.log" && eg_fail "a load run had errors: $(cat "$TMP/run.log")"
grep -q '200 of 200 Pings held' "$TMP/run.log" || eg_fail "held Pings not all held: $(cat "$TMP/run.log")"
grep -Eq '^\| requests/s \| [0-9,]+ \| [0-9,]+ \| [0-9.]+× ' "$out" || eg_fail "throughput row empty"
grep -Eq '^\| \*\*KiB per held Ping\*\* \| [0-9.,]+ \| [0-9.,]+ \|' "$out" || eg_fail "RSS row empty"
grep -Eq '^\| full handshakes/s \| [0-9,]+ \| [0-9,]+ \|' "$out" || eg_fail "handshake row empty"
# nothing it started is left behind
sleep 1
if pgrep -f "$TMP/easgate-bench" >/dev/null; then
  eg_fail "run.sh left processes: $(pgrep -af "$TMP/easgate-bench")"
fi
eg_pass "run.sh measured both proxies and wrote $(wc -l < "$out") lines"
