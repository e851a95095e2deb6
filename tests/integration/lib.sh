# Shared helpers for integration tests. Source it; every test gets
#   BUILD, SRC          the build and source dirs (arguments 1 and 2)
#   TMP                 a private temp dir, removed at exit
#   eg_port             prints a free loopback TCP port
#   eg_start NAME CMD.. starts CMD in the background, logs to $TMP/NAME.log,
#                       records its pid; every started pid is killed at exit
#   eg_wait_port PORT   waits (bounded, 10 s) until PORT accepts
#   eg_certs            makes a dev PKI in $TMP/certs (prints the dir)
#   eg_fail MSG         prints MSG and the logs, exits 1
#   eg_stop_clean NAME  SIGTERM to NAME (started by eg_start), which must exit
#                       0 within 6 s with no sanitizer report in its log
# Tests talk to 127.0.0.1/::1 only and stop only the processes they started.

BUILD=$(cd "${1:?build dir}" && pwd)
SRC=$(cd "${2:?source dir}" && pwd)
TMP=$(mktemp -d /tmp/easgate-test.XXXXXX)
EG_PIDS=()

eg_cleanup() {
  local pid
  for pid in "${EG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${EG_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -n "${EG_KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap eg_cleanup EXIT

eg_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

eg_start() {
  local name=$1; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  EG_PIDS+=("$!")
  eval "${name//[^a-zA-Z0-9_]/_}_pid=$!"
}

eg_wait_port() {
  local port=$1 host=${2:-127.0.0.1}
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  eg_fail "nothing listens on $host:$port after 10 s"
}

eg_certs() {
  bash "$SRC/certs/mkcerts" "$TMP/certs" >/dev/null
  echo "$TMP/certs"
}

eg_fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$TMP"/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

eg_pass() { echo "PASS: $*"; }

eg_stop_clean() {
  local name=$1 pidvar="${1//[^a-zA-Z0-9_]/_}_pid" rc=0
  local pid=${!pidvar}
  kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && eg_fail "$name still running 6 s after SIGTERM"
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || eg_fail "$name exit status $rc"
  grep -q "ERROR: AddressSanitizer\|runtime error" "$TMP/$name.log" && eg_fail "$name: sanitizer report"
  return 0
}
