#!/usr/bin/env bash
# bench/run.sh end to end, in miniature (BENCH_QUICK=1: 1 round, 1 s per
# run, 16 connections through the nginx backend plain and TLS, 200 held
# Pings, no profile): it starts exsim, the backend, easgate, nginx and
# HAProxy (when installed), measures, stops everything it started, and writes
# a RESULTS file whose tables are filled and whose runs had no errors. Keeps
# the benchmark script from rotting.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$BUILD/exsim" ] && [ -x "$BUILD/easload" ] || { echo "no exsim/easload"; exit 77; }
[ -x "$BUILD/easgate" ] || { echo "no easgate"; exit 77; }
# A benchmark of sanitized binaries measures the sanitizers; the script is
# kept from rotting by the plain build's run.
if grep -q '^EASGATE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "SKIP: bench/run.sh is tested from the plain build"; exit 77
fi
command -v nginx >/dev/null || { echo "no nginx"; exit 77; }
command -v python3 >/dev/null || exit 77
command -v curl >/dev/null || exit 77

out="$TMP/RESULTS.md"
TMPDIR="$TMP" BENCH_QUICK=1 BENCH_OUT="$out" \
  timeout 270 bash "$SRC/bench/run.sh" "$BUILD" > "$TMP/run.log" 2>&1 ||
  eg_fail "run.sh failed: $(tail -20 "$TMP/run.log")"
[ -s "$out" ] || eg_fail "no RESULTS written"
grep -q 'reported errors' "$TMP/run.log" && eg_fail "a load run had errors: $(cat "$TMP/run.log")"
n=2; command -v haproxy >/dev/null && n=3
[ "$(grep -c '200 of 200 Pings held' "$TMP/run.log")" = "$n" ] ||
  eg_fail "held Pings not all held by the $n proxies: $(cat "$TMP/run.log")"
# a filled row has a figure for every proxy and a ratio to every peer
num='[0-9.,]+'
cells="( $num \|){$n}( $num× \|){$((n - 1))}"
for row in '\*\*req/s, plain upstream\*\*' '\*\*req/s, TLS upstream\*\*' 'requests/s' \
  'latency p99\.9 \(ms\)' 'proxy CPU per request \(µs\)' '\*\*KiB per held Ping\*\*' \
  'idle RSS \(MiB\)' 'full handshakes/s'; do
  grep -Eq "^\| $row \|$cells\$" "$out" || eg_fail "row '$row' not filled: $(grep -E "^\| $row" "$out")"
done
grep -Eq '^\| c16, TLS upstream: req/s \| [0-9,]+ \| [0-9,]+ \| [0-9.]+× \|$' "$out" ||
  eg_fail "access-log row not filled"
# nothing it started is left behind
sleep 1
if pgrep -f "$TMP/easgate-bench" >/dev/null; then
  eg_fail "run.sh left processes: $(pgrep -af "$TMP/easgate-bench")"
fi
eg_pass "run.sh measured $n proxies and wrote $(wc -l < "$out") lines"
