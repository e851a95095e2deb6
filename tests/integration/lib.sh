# Shared helpers for integration tests. Source it; every test gets
#   BUILD, SRC          the build and source dirs (arguments 1 and 2)
#   TMP                 a private temp dir, removed at exit
#   eg_port             prints a free loopback TCP port
#   eg_start NAME CMD.. starts CMD in the background, logs to $TMP/NAME.log,
#                       records its pid in $NAME_pid; every started pid is
#                       killed at exit
#   eg_wait_port PORT [HOST]
#                       waits (bounded, 10 s) until PORT accepts
#   eg_certs            makes a dev PKI in $TMP/certs (prints the dir)
#   eg_fail MSG         prints MSG and the logs, exits 1
#   eg_stop_clean NAME  SIGTERM to NAME (started by eg_start), which must exit
#                       0 within 6 s with no sanitizer report in its log
# The processes most tests need, each started with eg_start (log, pid) and
# waited for; the port of NAME is $NAME_port, chosen when the helper runs
# unless the test set it first (a port already named in a config, or a
# restart on the same port):
#   eg_redis [NAME] [--tls] [ARG..]
#                       a throwaway redis-server NAME (default redis): loopback,
#                       no persistence, files in $TMP/NAME; --tls: TLS only,
#                       with the dev PKI's exsim certificate; ARGs are added
#                       (--replicaof 127.0.0.1 PORT)
#   eg_sentinel [NAME] MASTER PORT
#                       redis-sentinel NAME (default sentinel) watching
#                       127.0.0.1:PORT as MASTER: quorum 1, down after 800 ms,
#                       failover timeout 4 s, its config in $TMP/NAME
#   eg_exsim [NAME] [--tls] [--host ADDR] [ARG..]
#                       the Exchange simulator NAME (default exsim) on
#                       127.0.0.1 (or ADDR, e.g. ::1): plain HTTP, or with
#                       --tls the dev PKI's exsim certificate; ARGs go to exsim
#   eg_conf [-w WORKERS] [-]
#                       writes a minimal $TMP/easgate.yaml: WORKERS (2)
#                       workers, admin_listen on $admin_port, instance t on
#                       $proxy_port to exsim, policy.yaml, access.log, Redis;
#                       with -, the lines on stdin are added at its end (so
#                       indented ones carry on under redis:, others add
#                       sections such as core:)
#   eg_stack [-n NAME] [-w WORKERS] [ROLE [CONFIG|-]]
#                       `easgate ROLE -c CONFIG` (ROLE proxy by default, or
#                       core, run) as NAME (default ROLE), waiting for every
#                       listen and admin_listen address CONFIG gives that
#                       role. No CONFIG, or -: eg_redis and eg_exsim (unless
#                       started) and eg_conf [-w WORKERS] [-] make one.
# Tests talk to 127.0.0.1/::1 only and stop only the processes they started.

# Debian's own interpreter: its modules are the ones scripts/bootstrap
# installs (python3-aiosmtpd, ...), and it starts in a fifth of the time a
# version manager's shim takes (about 1 s per call on a loaded machine).
if [ -x /usr/bin/python3 ]; then
  python3() { /usr/bin/python3 "$@"; }
fi

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

# eg_has [GREP-OPTIONS] PATTERN: like grep -q on stdin, but reads all of it
# first. Under pipefail, 'producer | grep -q' fails when grep finds its match
# and exits while the producer is still writing: the producer dies of
# SIGPIPE and the pipeline reports it (seen with /metrics output).
eg_has() {
  local in
  in=$(cat)
  grep -q "$@" <<<"$in"
}

eg_start() {
  local name=$1; shift
  # python3 is a function above: started through it, the pid kept would be
  # a subshell's, and stopping it would leave the interpreter running
  [ "$1" != python3 ] || [ ! -x /usr/bin/python3 ] || set -- /usr/bin/python3 "${@:2}"
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

# eg_take_port NAME: $NAME_port becomes a free port unless it is set. (Not
# in $(...): the variable would be set in a subshell only.)
eg_take_port() {
  local var="${1//[^a-zA-Z0-9_]/_}_port"
  [ -n "${!var:-}" ] || printf -v "$var" '%s' "$(eg_port)"
}

eg_redis() {
  local name=redis tls=() var port plain
  [ $# = 0 ] || [ "${1#-}" != "$1" ] || { name=$1; shift; }
  eg_take_port "$name"
  var="${name//[^a-zA-Z0-9_]/_}_port"
  port=${!var} plain=${!var}
  if [ "${1:-}" = --tls ]; then
    shift
    [ -f "$TMP/certs/exsim.key" ] || eg_certs >/dev/null
    plain=0
    tls=(--tls-port "$port" --tls-cert-file "$TMP/certs/exsim.crt" --tls-key-file "$TMP/certs/exsim.key"
      --tls-ca-cert-file "$TMP/certs/ca.crt" --tls-auth-clients no)
  fi
  mkdir -p "$TMP/$name"
  eg_start "$name" redis-server --port "$plain" "${tls[@]}" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$TMP/$name" --daemonize no "$@"
  eg_wait_port "$port"
}

eg_sentinel() {
  local name=sentinel var
  [ $# -lt 3 ] || { name=$1; shift; }
  eg_take_port "$name"
  var="${name//[^a-zA-Z0-9_]/_}_port"
  mkdir -p "$TMP/$name"
  cat >"$TMP/$name/sentinel.conf" <<EOF
port ${!var}
bind 127.0.0.1
dir $TMP/$name
sentinel monitor $1 127.0.0.1 $2 1
sentinel down-after-milliseconds $1 800
sentinel failover-timeout $1 4000
EOF
  eg_start "$name" redis-sentinel "$TMP/$name/sentinel.conf"
  eg_wait_port "${!var}"
}

eg_exsim() {
  local name=exsim host=127.0.0.1 tls=() var addr
  [ $# = 0 ] || [ "${1#-}" != "$1" ] || { name=$1; shift; }
  eg_take_port "$name"
  var="${name//[^a-zA-Z0-9_]/_}_port"
  while [ $# -gt 0 ]; do
    case $1 in
      --tls)
        [ -f "$TMP/certs/exsim.key" ] || eg_certs >/dev/null
        tls=(--tls-cert "$TMP/certs/exsim.crt" --tls-key "$TMP/certs/exsim.key") ;;
      --host) host=$2; shift ;;
      *) break ;;
    esac
    shift
  done
  addr="$host:${!var}"
  [ "${host#*:}" = "$host" ] || addr="[$host]:${!var}"
  eg_start "$name" "$BUILD/exsim" --listen "$addr" "${tls[@]}" "$@"
  eg_wait_port "${!var}" "$host"
}

# eg_listens ROLE CONFIG: "HOST PORT" for each listen and admin_listen
# address ROLE opens (proxy: the proxy: section; core: core: and enroll:;
# run: all three); 0.0.0.0 and :: are waited for on loopback.
eg_listens() {
  local want=" proxy core enroll " sec= line addr host
  local key='^([A-Za-z_]+):' listen='(^|[{ ,])(admin_)?listen: *"?([^" ,}]+)'
  case $1 in proxy) want=" proxy " ;; core) want=" core enroll " ;; esac
  while IFS= read -r line; do
    [[ ! $line =~ $key ]] || sec=${BASH_REMATCH[1]}
    [[ $want == *" $sec "* && $line =~ $listen ]] || continue
    addr=${BASH_REMATCH[3]}
    [ "$addr" != off ] || continue
    host=${addr%:*} && host=${host#[} && host=${host%]}
    case $host in 0.0.0.0 | '') host=127.0.0.1 ;; ::) host=::1 ;; esac
    echo "$host ${addr##*:}"
  done <"$2"
}

eg_conf() {
  local workers=2
  [ "${1:-}" != -w ] || { workers=$2; shift 2; }
  eg_take_port redis
  eg_take_port exsim
  eg_take_port proxy
  eg_take_port admin
  {
    cat <<EOF
proxy:
  workers: $workers
  admin_listen: 127.0.0.1:$admin_port
  instances:
    - name: t
      listen: 127.0.0.1:$proxy_port
      upstream:
        url: http://127.0.0.1:$exsim_port
policy: policy.yaml
log: { access: access.log, error: "-", level: info }
redis:
  url: redis://127.0.0.1:$redis_port/0
EOF
    [ "${1:-}" != - ] || cat
  } >"$TMP/easgate.yaml"
}

# eg_proxy N [-w WORKERS] [-t]: proxy process N ("proxyN") in front of the
# test's exsim, on its redis and $TMP/policy.yaml, as a second or third
# proxy behind a load balancer would be: listens on PXn (admin ADn), access
# log $TMP/accessN.log; -t trusts X-Forwarded-For from loopback. Returns
# when both of its ports answer and every worker is connected to Redis.
eg_proxy() {
  local n=$1 workers=1 trust= i
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      -w) workers=$2; shift 2 ;;
      -t) trust="      trusted_proxies: [127.0.0.1/32]"; shift ;;
      *) eg_fail "eg_proxy: unknown option $1" ;;
    esac
  done
  printf -v "PX$n" %s "$(eg_port)"
  printf -v "AD$n" %s "$(eg_port)"
  local px=PX$n ad=AD$n
  {
    printf 'proxy:\n  workers: %s\n  admin_listen: 127.0.0.1:%s\n' "$workers" "${!ad}"
    printf '  instances:\n    - name: t\n      listen: 127.0.0.1:%s\n' "${!px}"
    [ -z "$trust" ] || echo "$trust"
    printf '      upstream: { url: "http://127.0.0.1:%s" }\n' "$exsim_port"
    printf 'policy: %s\n' "$TMP/policy.yaml"
    printf 'log: { access: "%s", error: "-", level: info }\n' "$TMP/access$n.log"
    printf 'redis:\n  url: redis://127.0.0.1:%s/0\n' "$redis_port"
  } >"$TMP/easgate$n.yaml"
  eg_start "proxy$n" "$BUILD/easgate" proxy -c "$TMP/easgate$n.yaml"
  eg_wait_port "${!px}"
  eg_wait_port "${!ad}"
  for i in $(seq 50); do
    [ "$(curl -s --max-time 5 "http://127.0.0.1:${!ad}/metrics" |
      awk '$1 == "easgate_redis_connected" {print $2}')" = "$workers" ] && return 0
    sleep 0.1
  done
}

eg_stack() {
  local name= workers=2 role conf host port
  while [ $# -gt 0 ]; do
    case $1 in
      -n) name=$2 ;;
      -w) workers=$2 ;;
      *) break ;;
    esac
    shift 2
  done
  role=${1:-proxy} conf=${2:-}
  if [ -z "$conf" ] || [ "$conf" = - ]; then
    [ -n "${redis_pid:-}" ] || eg_redis
    [ -n "${exsim_pid:-}" ] || eg_exsim
    eg_conf -w "$workers" $conf
    conf=$TMP/easgate.yaml
  fi
  eg_start "${name:-$role}" "$BUILD/easgate" "$role" -c "$conf"
  while read -r host port; do eg_wait_port "$port" "$host"; done < <(eg_listens "$role" "$conf")
}
