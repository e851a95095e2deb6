#!/usr/bin/env bash
# The TLS-to-Redis recipe of docs/operations.md works: Redis listens with TLS
# only, stunnel on loopback verifies its certificate and hands plain RESP to
# easgate's state store (driven here by rstorebench: devices written and read
# back, cold lookups, hits). Skips when stunnel4 is not installed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
STUNNEL=$(command -v stunnel4 || command -v stunnel || true)
[ -n "$STUNNEL" ] || { echo "no stunnel4"; exit 77; }
command -v redis-server >/dev/null || { echo "no redis-server"; exit 77; }
[ -x "$BUILD/rstorebench" ] || { echo "no $BUILD/rstorebench"; exit 77; }

certs=$(eg_certs)
lport=$(eg_port)
eg_redis --tls

cat >"$TMP/stunnel.conf" <<EOF
foreground = yes
pid =
[easgate-redis]
client = yes
accept = 127.0.0.1:$lport
connect = 127.0.0.1:$redis_port
verifyChain = yes
CAfile = $certs/ca.crt
checkHost = localhost
EOF
eg_start stunnel "$STUNNEL" "$TMP/stunnel.conf"
eg_wait_port "$lport"

# Plain RESP straight at the TLS port gets nowhere: the tunnel is what works.
if timeout 3 redis-cli -p "$redis_port" PING 2>/dev/null | eg_has PONG; then
  eg_fail "Redis answered plain text on its TLS port"
fi
timeout 30 "$BUILD/rstorebench" --port "$lport" --devices 2000 --burst 1000 --rate 5000 \
  --hits 10000 >"$TMP/bench.out" 2>&1 || eg_fail "rstorebench through stunnel failed: $(cat "$TMP/bench.out")"
grep -q 'errors 0' "$TMP/bench.out" || eg_fail "lookups through stunnel had errors"
grep -q '(10000 found)' "$TMP/bench.out" || eg_fail "cache hits through stunnel missing"
eg_pass "state store through stunnel to a TLS-only Redis"
